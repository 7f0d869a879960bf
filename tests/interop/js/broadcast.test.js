// Broadcast between realtime-js clients: JSON and binary payloads, self/ack, REST.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  HTTP_URL, ANON_KEY, newClient, uniqueName, subscribed, collect, eventually,
} from './helpers.js'

test('broadcast with self and ack reaches sender and peer', async (t) => {
  const a = newClient()
  const b = newClient()
  t.after(() => { a.disconnect(); b.disconnect() })
  const name = uniqueName('bc')
  const ca = a.channel(name, { config: { broadcast: { self: true, ack: true } } })
  const cb = b.channel(name)
  const gotA = collect(ca, 'ping')
  const gotB = collect(cb, 'ping')
  await Promise.all([subscribed(ca), subscribed(cb)])

  const status = await ca.send({ type: 'broadcast', event: 'ping', payload: { n: 1, s: 'héllo' } })
  assert.equal(status, 'ok') // ack: true → resolved by the server's reply
  await eventually(() => gotA.length === 1 && gotB.length === 1, 'ping on both clients')
  for (const msg of [gotA[0], gotB[0]]) {
    assert.equal(msg.type, 'broadcast')
    assert.equal(msg.event, 'ping')
    assert.deepEqual(msg.payload, { n: 1, s: 'héllo' })
  }
})

test('without self the sender does not get its own message', async (t) => {
  const a = newClient()
  const b = newClient()
  t.after(() => { a.disconnect(); b.disconnect() })
  const name = uniqueName('noself')
  const ca = a.channel(name)
  const cb = b.channel(name)
  const gotA = collect(ca, '*')
  const gotB = collect(cb, 'first')
  await Promise.all([subscribed(ca), subscribed(cb)])
  assert.equal(await ca.send({ type: 'broadcast', event: 'first', payload: {} }), 'ok')
  await eventually(() => gotB.length === 1, 'first on b')
  // b answers; a's own message would have been queued to a before this one.
  await cb.send({ type: 'broadcast', event: 'second', payload: {} })
  await eventually(() => gotA.length >= 1, 'second on a')
  assert.deepEqual(gotA.map((m) => m.event), ['second'])
})

test('binary payloads arrive as ArrayBuffer', async (t) => {
  const a = newClient()
  const b = newClient()
  t.after(() => { a.disconnect(); b.disconnect() })
  const name = uniqueName('bin')
  const ca = a.channel(name, { config: { broadcast: { ack: true } } })
  const cb = b.channel(name)
  const gotB = collect(cb, 'blob')
  await Promise.all([subscribed(ca), subscribed(cb)])
  const bytes = new Uint8Array([0, 1, 2, 250, 255])
  assert.equal(await ca.send({ type: 'broadcast', event: 'blob', payload: bytes.buffer }), 'ok')
  await eventually(() => gotB.length === 1, 'binary broadcast')
  assert.ok(gotB[0].payload instanceof ArrayBuffer, 'payload is an ArrayBuffer')
  assert.deepEqual([...new Uint8Array(gotB[0].payload)], [...bytes])
})

test('REST: httpSend, the batch endpoint and the send() fallback', async (t) => {
  const a = newClient()
  const b = newClient()
  t.after(() => { a.disconnect(); b.disconnect() })
  const name = uniqueName('rest')
  const ca = a.channel(name)
  const cb = b.channel(name)
  const got = collect(cb, '*')
  await subscribed(cb)

  // Single-message endpoint (JSON and binary), from a channel that never subscribed.
  assert.deepEqual(await ca.httpSend('single', { via: 'httpSend' }), { success: true })
  assert.deepEqual(await ca.httpSend('bytes', new Uint8Array([7, 8]).buffer), { success: true })
  await eventually(() => got.length === 2, 'httpSend messages')
  assert.equal(got[0].event, 'single')
  assert.deepEqual(got[0].payload, { via: 'httpSend' })
  assert.deepEqual([...new Uint8Array(got[1].payload)], [7, 8])

  // Batch endpoint, straight.
  const res = await fetch(`${HTTP_URL}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { apikey: ANON_KEY, Authorization: `Bearer ${ANON_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ topic: name, event: 'batch', payload: { n: 1 }, id: 'id-1' }] }),
  })
  assert.equal(res.status, 202)
  await eventually(() => got.length === 3, 'batch message')
  assert.deepEqual(got[2].payload, { n: 1 })
  assert.deepEqual(got[2].meta, { id: 'id-1' })

  // send() on a channel that is not joined falls back to the batch endpoint.
  const status = await ca.send({ type: 'broadcast', event: 'fallback', payload: { ok: true } })
  assert.equal(status, 'ok')
  await eventually(() => got.length === 4, 'fallback message')
  assert.equal(got[3].event, 'fallback')

  // Refusals.
  const bad = await fetch(`${HTTP_URL}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { apikey: 'nope', 'Content-Type': 'application/json' },
    body: '{"messages":[]}',
  })
  assert.equal(bad.status, 401)
  const priv = a.channel(uniqueName('rest-private'), { config: { private: true } })
  await assert.rejects(priv.httpSend('x', {}), /Unauthorized/)
})
