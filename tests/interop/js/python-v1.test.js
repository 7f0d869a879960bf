// The vsn 1.0.0 path: the Python `realtime` package (PyPI) exchanges broadcast and presence
// with a realtime-js (vsn 2.0.0) client through the server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import {
  HTTP_URL, ANON_KEY, newClient, uniqueName, subscribed, eventually, collect,
} from './helpers.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const PYTHON = process.env.INTEROP_PYTHON || path.join(here, '..', '.venv', 'bin', 'python')

/** The Python peer as a process: its JSON event lines, and a way to send commands. */
function startPeer(name) {
  const proc = spawn(PYTHON, [path.join(here, '..', 'py', 'peer.py'), HTTP_URL, ANON_KEY, name], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const events = []
  let stderr = ''
  proc.stderr.on('data', (c) => { stderr += c })
  createInterface({ input: proc.stdout }).on('line', (line) => {
    try { events.push(JSON.parse(line)) } catch { events.push({ kind: 'garbage', line }) }
  })
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)))
  return {
    events,
    exited,
    stderr: () => stderr,
    send: (cmd) => proc.stdin.write(JSON.stringify(cmd) + '\n'),
    find: (pred, what) => eventually(() => events.find(pred), `python: ${what}\n${stderr}`),
    kill: () => proc.kill(),
  }
}

test('python realtime (vsn 1.0.0) and realtime-js (vsn 2.0.0) exchange broadcast and presence', async (t) => {
  const name = uniqueName('py')
  const peer = startPeer(name)
  const js = newClient()
  t.after(() => { js.disconnect(); peer.kill() })

  const status = await peer.find((e) => e.kind === 'status', 'subscribe status')
  assert.match(status.status, /SUBSCRIBED/, peer.stderr())

  const ch = js.channel(name, { config: { presence: { key: 'js' }, broadcast: { ack: true } } })
  ch.on('presence', { event: 'sync' }, () => {})
  const fromPy = collect(ch, 'to_js')
  await subscribed(ch)

  // realtime-js sends a binary kind-3 frame; the V1 peer receives it converted to JSON.
  assert.equal(await ch.send({ type: 'broadcast', event: 'to_py', payload: { n: 1, from: 'js' } }), 'ok')
  const got = await peer.find((e) => e.kind === 'broadcast', 'broadcast from js')
  const msg = got.msg.payload ?? got.msg
  assert.deepEqual(msg.payload ?? msg, { n: 1, from: 'js' })

  // The V1 peer sends JSON; realtime-js receives it.
  peer.send({ cmd: 'send', event: 'to_js', payload: { n: 2, from: 'py' } })
  await eventually(() => fromPy.length === 1, 'broadcast from python')
  assert.deepEqual(fromPy[0].payload, { n: 2, from: 'py' })

  // Presence both ways.
  assert.equal(await ch.track({ lang: 'js' }), 'ok')
  peer.send({ cmd: 'track', payload: { lang: 'py' } })
  await eventually(() => ch.presenceState().py?.[0]?.lang === 'py', 'python presence on js')
  const sync = await peer.find((e) => e.kind === 'sync' && e.state.js && e.state.py, 'js presence on python')
  assert.equal(sync.state.js[0].lang, 'js')

  peer.send({ cmd: 'untrack' })
  await eventually(() => !ch.presenceState().py, 'python untracked')
  peer.send({ cmd: 'track', payload: { lang: 'py', again: true } })
  await eventually(() => ch.presenceState().py?.[0]?.again, 'python tracked again')
  peer.send({ cmd: 'quit' })
  assert.equal(await peer.exited, 0, peer.stderr())
  await eventually(() => !ch.presenceState().py, 'python left on disconnect')
})
