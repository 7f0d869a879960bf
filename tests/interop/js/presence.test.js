// Presence between realtime-js clients: sync, join, leave, re-track, several metas per key.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { newClient, uniqueName, subscribed, eventually } from './helpers.js'

test('presence sync, join and leave between two clients', async (t) => {
  const a = newClient()
  const b = newClient()
  t.after(() => { a.disconnect(); b.disconnect() })
  const name = uniqueName('presence')
  const ca = a.channel(name, { config: { presence: { key: 'alice' } } })
  const cb = b.channel(name, { config: { presence: { key: 'bob' } } })
  const joins = []
  const leaves = []
  let syncs = 0
  ca.on('presence', { event: 'sync' }, () => { syncs++ })
  ca.on('presence', { event: 'join' }, (e) => joins.push(e))
  ca.on('presence', { event: 'leave' }, (e) => leaves.push(e))
  cb.on('presence', { event: 'sync' }, () => {})
  await Promise.all([subscribed(ca), subscribed(cb)])

  assert.equal(await ca.track({ user: 'alice', online: true }), 'ok')
  assert.equal(await cb.track({ user: 'bob' }), 'ok')
  for (const ch of [ca, cb]) {
    const state = await eventually(() => {
      const s = ch.presenceState()
      return s.alice && s.bob ? s : null
    }, `both keys on ${ch.topic}`)
    assert.equal(state.alice.length, 1)
    assert.equal(state.alice[0].user, 'alice')
    assert.equal(state.alice[0].online, true)
    assert.equal(typeof state.alice[0].presence_ref, 'string')
    assert.equal(state.alice[0].phx_ref, undefined)
    assert.equal(state.bob[0].user, 'bob')
  }
  assert.ok(syncs > 0)
  assert.ok(joins.some((e) => e.key === 'bob' && e.newPresences[0].user === 'bob'))

  // Re-track with a new payload replaces the meta (join + leave with phx_ref_prev upstream).
  assert.equal(await cb.track({ user: 'bob', status: 'away' }), 'ok')
  await eventually(() => ca.presenceState().bob?.[0]?.status === 'away', 'bob away')
  assert.equal(ca.presenceState().bob.length, 1)

  // Untrack → leave.
  assert.equal(await cb.untrack(), 'ok')
  await eventually(() => !ca.presenceState().bob, 'bob untracked')
  assert.ok(leaves.some((e) => e.key === 'bob'))

  // Track again, then leave the channel → leave.
  await cb.track({ user: 'bob', again: true })
  await eventually(() => ca.presenceState().bob?.[0]?.again, 'bob back')
  await b.removeChannel(cb)
  await eventually(() => !ca.presenceState().bob, 'bob left with the channel')
})

test('several connections under one key; disconnect leaves', async (t) => {
  const a = newClient()
  const b = newClient()
  const c = newClient()
  t.after(() => { a.disconnect(); b.disconnect(); c.disconnect() })
  const name = uniqueName('metas')
  const watch = a.channel(name, { config: { presence: { key: 'watcher' } } })
  watch.on('presence', { event: 'sync' }, () => {})
  const tab1 = b.channel(name, { config: { presence: { key: 'carol' } } })
  const tab2 = c.channel(name, { config: { presence: { key: 'carol' } } })
  await Promise.all([subscribed(watch), subscribed(tab1), subscribed(tab2)])
  await tab1.track({ tab: 1 })
  await tab2.track({ tab: 2 })
  await eventually(() => watch.presenceState().carol?.length === 2, 'two metas for carol')
  assert.deepEqual(watch.presenceState().carol.map((m) => m.tab).sort(), [1, 2])
  c.disconnect()
  await eventually(() => watch.presenceState().carol?.length === 1, 'one meta left')
  assert.equal(watch.presenceState().carol[0].tab, 1)
})

test('an empty presence key gets a server-generated key', async (t) => {
  const a = newClient()
  const b = newClient()
  t.after(() => { a.disconnect(); b.disconnect() })
  const name = uniqueName('genkey')
  const ca = a.channel(name)
  ca.on('presence', { event: 'sync' }, () => {})
  const cb = b.channel(name)
  await Promise.all([subscribed(ca), subscribed(cb)])
  await cb.track({ anon: true })
  const state = await eventually(() => {
    const keys = Object.keys(ca.presenceState())
    return keys.length === 1 ? keys : null
  }, 'one generated key')
  assert.match(state[0], /^[0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
})
