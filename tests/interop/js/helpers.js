// Shared helpers for the conformance suite. The run script starts the server and exports
// REALTIME_HTTP_URL, ANON_KEY and JWT_SECRET.
import crypto from 'node:crypto'
import { RealtimeClient } from '@supabase/realtime-js'
import WebSocket from 'ws'

export const HTTP_URL = process.env.REALTIME_HTTP_URL
if (!HTTP_URL) throw new Error('REALTIME_HTTP_URL is not set: run tests/interop/run')
export const ANON_KEY = process.env.ANON_KEY
export const SECRET =
  process.env.JWT_SECRET || 'super-secret-jwt-token-with-at-least-32-characters-long'
export const WS_URL = HTTP_URL.replace(/^http/, 'ws') + '/realtime/v1'

/** Every wait ends by this deadline. */
export const DEADLINE_MS = 8000

/** A realtime-js client on Node 20: the `ws` package is the transport. */
export function newClient(opts = {}) {
  return new RealtimeClient(WS_URL, {
    params: { apikey: ANON_KEY },
    transport: WebSocket,
    ...opts,
  })
}

/** A unique channel name per test, so tests never see each other's messages. */
export function uniqueName(prefix) {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`
}

const b64url = (buf) => Buffer.from(buf).toString('base64url')

/** An HS256 JWT signed with the server's secret. */
export function signToken(claims) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
  const body = b64url(JSON.stringify(claims))
  const sig = crypto.createHmac('sha256', SECRET).update(`${header}.${body}`).digest()
  return `${header}.${body}.${b64url(sig)}`
}

export const nowSecs = () => Math.floor(Date.now() / 1000)

/** A promise with its resolve/reject exposed. */
export function deferred() {
  let resolve, reject
  const promise = new Promise((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Rejects with `what` when `promise` does not settle by the deadline. */
export function within(promise, what = 'event', ms = DEADLINE_MS) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Re-checks `predicate` on each event-loop turn (every 20 ms) until true or the deadline. */
export async function eventually(predicate, what = 'condition', ms = DEADLINE_MS) {
  const end = Date.now() + ms
  for (;;) {
    const value = predicate()
    if (value) return value
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Subscribes; resolves on SUBSCRIBED, rejects with the server's reason otherwise. */
export function subscribed(channel) {
  const d = deferred()
  channel.subscribe((status, err) => {
    if (status === 'SUBSCRIBED') d.resolve(status)
    else d.reject(err ?? new Error(status))
  })
  return within(d.promise, `SUBSCRIBED on ${channel.topic}`)
}

/** Records every status the subscribe callback reports. */
export function subscribeRecording(channel) {
  const statuses = []
  channel.subscribe((status, err) => statuses.push({ status, err }))
  return statuses
}

/** Collects broadcasts of one event on a channel (register before subscribing). */
export function collect(channel, event) {
  const got = []
  channel.on('broadcast', { event }, (msg) => got.push(msg))
  return got
}
