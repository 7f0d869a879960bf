// Tokens and errors: refresh, expiry, bad refresh, join errors, refused connections.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import {
  WS_URL, newClient, uniqueName, subscribed, eventually, signToken, nowSecs, within, deferred,
} from './helpers.js'

test('a refreshed token keeps the channel past the old expiry', async (t) => {
  const a = newClient()
  t.after(() => a.disconnect())
  const oldExp = nowSecs() + 2
  await a.setAuth(signToken({ role: 'authenticated', sub: 'u1', exp: oldExp }))
  const ch = a.channel(uniqueName('refresh'), { config: { broadcast: { self: true, ack: true } } })
  const system = []
  ch.on('system', {}, (p) => system.push(p))
  const got = []
  ch.on('broadcast', { event: 'after' }, (m) => got.push(m))
  await subscribed(ch)
  await a.setAuth(signToken({ role: 'authenticated', sub: 'u1', exp: nowSecs() + 3600 }))
  // Asserting an absence: wait until the old token would have expired, then check.
  await eventually(() => Date.now() > oldExp * 1000 + 700, 'the old expiry to pass', 6000)
  assert.equal(await ch.send({ type: 'broadcast', event: 'after', payload: {} }), 'ok')
  await eventually(() => got.length === 1, 'self broadcast after refresh')
  assert.equal(ch.state, 'joined')
  assert.deepEqual(system, [])
})

test('the channel is closed when its token expires', async (t) => {
  const a = newClient()
  t.after(() => a.disconnect())
  await a.setAuth(signToken({ role: 'authenticated', exp: nowSecs() + 2 }))
  const ch = a.channel(uniqueName('expiry'))
  const system = deferred()
  ch.on('system', {}, (p) => system.resolve(p))
  const closed = deferred()
  ch.subscribe((status) => { if (status === 'CLOSED') closed.resolve() })
  const payload = await within(system.promise, 'system message at expiry')
  assert.equal(payload.extension, 'system')
  assert.equal(payload.status, 'error')
  assert.match(payload.message, /^Token has expired \d+ seconds ago$/)
  await within(closed.promise, 'CLOSED')
})

test('a bad token refresh closes the channel with the reason', async (t) => {
  const a = newClient()
  t.after(() => a.disconnect())
  const ch = a.channel(uniqueName('badrefresh'))
  const system = deferred()
  ch.on('system', {}, (p) => system.resolve(p))
  const closed = deferred()
  ch.subscribe((status) => {
    if (status === 'SUBSCRIBED') a.setAuth('not-a-jwt')
    if (status === 'CLOSED') closed.resolve()
  })
  const payload = await within(system.promise, 'system error')
  assert.equal(payload.message, 'The token provided is not a valid JWT')
  await within(closed.promise, 'CLOSED')
})

test('join errors reach the subscribe callback with the exact reason', async (t) => {
  const a = newClient()
  t.after(() => a.disconnect())
  const cases = [
    [a.channel(uniqueName('priv'), { config: { private: true } }),
      /^Unauthorized: You do not have permissions to read from this Channel topic: priv-/],
    [a.channel(''), /^TopicNameRequired: You must provide a topic name$/],
  ]
  for (const [ch, reason] of cases) {
    const d = deferred()
    ch.subscribe((status, err) => {
      if (status === 'CHANNEL_ERROR') d.resolve(err)
      else if (status === 'SUBSCRIBED') d.reject(new Error('unexpectedly subscribed'))
    })
    const err = await within(d.promise, 'CHANNEL_ERROR')
    assert.match(err.message, reason)
    await a.removeChannel(ch) // stop the rejoin loop
  }
  // An expired join token.
  const b = newClient()
  t.after(() => b.disconnect())
  await b.setAuth(signToken({ role: 'anon', exp: nowSecs() - 60 }))
  const ch = b.channel(uniqueName('expired'))
  const d = deferred()
  ch.subscribe((status, err) => { if (status === 'CHANNEL_ERROR') d.resolve(err) })
  const err = await within(d.promise, 'CHANNEL_ERROR for an expired token')
  assert.match(err.message, /^InvalidJWTToken: Token has expired \d+ seconds ago$/)
  await b.removeChannel(ch)
})

test('postgres_changes bindings without a database: ids match, system error', async (t) => {
  const a = newClient()
  t.after(() => a.disconnect())
  const ch = a.channel(uniqueName('pg'))
  const system = deferred()
  ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'todos' }, () => {})
  ch.on('system', {}, (p) => system.resolve(p))
  await subscribed(ch) // realtime-js matched the echoed bindings by position
  const payload = await within(system.promise, 'system message')
  assert.equal(payload.extension, 'postgres_changes')
  assert.equal(payload.status, 'error')
  assert.match(payload.message, /database/)
})

test('refused connections are HTTP errors with a JSON body', async () => {
  const refusal = (query) => {
    const d = deferred()
    const ws = new WebSocket(`${WS_URL}/websocket?${query}`)
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (c) => { body += c })
      res.on('end', () => {
        ws.terminate() // ends the refused handshake (else the process stays alive)
        d.resolve({ status: res.statusCode, body })
      })
    })
    ws.on('open', () => { ws.close(); d.reject(new Error('unexpectedly connected')) })
    ws.on('error', () => {})
    return within(d.promise, 'HTTP refusal')
  }
  let r = await refusal('vsn=2.0.0')
  assert.equal(r.status, 401)
  assert.deepEqual(JSON.parse(r.body), { error: 'API key is missing' })
  r = await refusal(`apikey=${signToken({ role: 'anon', exp: nowSecs() - 5 })}&vsn=2.0.0`)
  assert.deepEqual([r.status, JSON.parse(r.body)], [401, { error: 'Token has expired' }])
  r = await refusal(`apikey=${signToken({ role: 'anon', exp: nowSecs() + 60 })}&vsn=9.0.0`)
  assert.deepEqual([r.status, r.body], [403, ''])
})
