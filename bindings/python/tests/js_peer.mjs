// realtime-js as the other party of the Python broadcast test.
// Usage: node js_peer.mjs <ws url> <anon key> <channel name>
// Joins the channel, prints `ready` once SUBSCRIBED, answers each `ping` broadcast
// {n} with a `pong` broadcast {n: n + 1, from: "js"}, printing `got <payload json>`.
// Uses the realtime-js installed in tests/interop (`npm ci --prefix tests/interop`).
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '../../../tests/interop/package.json'))
const { RealtimeClient } = require('@supabase/realtime-js')
const WebSocket = require('ws')

const [url, anonKey, name] = process.argv.slice(2)
const client = new RealtimeClient(url, { params: { apikey: anonKey }, transport: WebSocket })
const channel = client.channel(name)
channel.on('broadcast', { event: 'ping' }, ({ payload }) => {
  console.log(`got ${JSON.stringify(payload)}`)
  channel.send({ type: 'broadcast', event: 'pong', payload: { n: payload.n + 1, from: 'js' } })
})
channel.subscribe((status, err) => {
  console.log(status === 'SUBSCRIBED' ? 'ready' : `status ${status} ${err ?? ''}`)
})
// The parent closes stdin (or exits) when done; never outlive it.
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
setTimeout(() => process.exit(2), 60000)
