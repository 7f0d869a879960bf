// Broadcast between realtime-js clients: JSON and binary payloads, self/ack, REST.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import {
  HTTP_URL, WS_URL, ANON_KEY, newClient, uniqueName, subscribed, collect, eventually, within,
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

// A raw sender (the `ws` package, not realtime-js) sends what realtime-js never would: a
// broadcast whose event is a number, and a kind-3 frame flagged JSON whose payload is not
// JSON. Relayed, either throws inside a realtime-js subscriber in Node and kills the process
// running this suite; the server refuses both with an error reply instead.
test('broadcasts that would crash realtime-js subscribers are refused, not relayed', async (t) => {
  const sub = newClient()
  const raw = new WebSocket(`${WS_URL}/websocket?apikey=${ANON_KEY}&vsn=2.0.0`)
  t.after(() => { sub.disconnect(); raw.close() })
  const name = uniqueName('hostile')
  const topic = `realtime:${name}`
  const ch = sub.channel(name)
  const got = collect(ch, '*')
  await subscribed(ch)

  const replies = new Map()
  raw.on('message', (data, isBinary) => {
    if (isBinary) return
    const [, ref, , event, payload] = JSON.parse(data.toString())
    if (event === 'phx_reply') replies.set(ref, payload)
  })
  if (raw.readyState !== WebSocket.OPEN) {
    await within(new Promise((resolve, reject) => { raw.once('open', resolve); raw.once('error', reject) }), 'raw socket open')
  }
  raw.send(JSON.stringify(['1', '1', topic, 'phx_join', { config: {} }]))
  await eventually(() => replies.get('1')?.status === 'ok', 'raw join')

  raw.send(JSON.stringify(['1', '2', topic, 'broadcast', { type: 'broadcast', event: 7, payload: {} }]))
  const enc = new TextEncoder()
  const [jr, ref, tp, ev, body] = ['1', '3', topic, 'boom', '{not json'].map((x) => enc.encode(x))
  const header = [3, jr.length, ref.length, tp.length, ev.length, 0, 1]
  raw.send(Buffer.concat([Buffer.from(header), jr, ref, tp, ev, body]))
  raw.send(JSON.stringify(['1', '4', topic, 'broadcast', { type: 'broadcast', event: 'fine', payload: { ok: true } }]))

  await eventually(() => replies.has('2') && replies.has('3'), 'replies to the refused frames')
  assert.deepEqual(replies.get('2'), { status: 'error', response: { reason: 'broadcast event must be a string' } })
  assert.deepEqual(replies.get('3'), {
    status: 'error',
    response: { reason: 'broadcast payload is flagged JSON but is not valid JSON' },
  })
  await eventually(() => got.length === 1, 'the valid broadcast')
  assert.equal(got[0].event, 'fine')
  assert.deepEqual(got[0].payload, { ok: true })
})
