// Postgres changes, RLS and private channels with realtime-js against a server on a real
// PostgreSQL. The suite's shared server runs without a database, so this file starts its own
// (same binary, --database-url) on DATABASE_URL, or on a throwaway cluster from
// scripts/dev-postgres when DATABASE_URL is unset. SQL goes through psql.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { RealtimeClient } from '@supabase/realtime-js'
import WebSocket from 'ws'
import { signToken, nowSecs, within, eventually, deferred, uniqueName } from './helpers.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const bin = path.join(process.env.CARGO_TARGET_DIR || path.join(root, 'target'), 'debug', 'supa-realtime-server')

let databaseUrl = process.env.DATABASE_URL
let clusterDir = null
let server = null
let wsUrl = null
let anonKey = null

function sql(text) {
  return execFileSync('psql', [databaseUrl, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', text], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

before(async () => {
  if (!databaseUrl) {
    clusterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'supa-pg-interop-'))
    const out = execFileSync(path.join(root, 'scripts/dev-postgres'), ['start', clusterDir], { encoding: 'utf8' })
    databaseUrl = out.match(/^DATABASE_URL=(.*)$/m)[1]
  }
  // A temporary replication slot: test servers leave nothing behind in the database.
  server = spawn(bin, ['--listen', '127.0.0.1:0', '--database-url', databaseUrl, '--temporary-slot'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  server.stdout.on('data', (d) => { out += d })
  await eventually(() => /^service_role key: /m.test(out), 'the postgres-backed server to start', 30000)
  wsUrl = out.match(/^listening on (\S+)/m)[1].replace(/^http/, 'ws') + '/realtime/v1'
  anonKey = out.match(/^anon key: (\S+)/m)[1]
})

after(() => {
  server?.kill()
  if (clusterDir) execFileSync(path.join(root, 'scripts/dev-postgres'), ['stop', clusterDir])
})

function client() {
  return new RealtimeClient(wsUrl, { params: { apikey: anonKey }, transport: WebSocket })
}

const user = (sub) => signToken({ role: 'authenticated', sub, exp: nowSecs() + 3600 })

/** Subscribes and waits for SUBSCRIBED and the `Subscribed to PostgreSQL` system message. */
async function subscribedToPostgres(channel) {
  const system = deferred()
  channel.on('system', {}, (p) => { if (p.extension === 'postgres_changes') system.resolve(p) })
  const joined = deferred()
  channel.subscribe((status, err) => {
    if (status === 'SUBSCRIBED') joined.resolve()
    else joined.reject(err ?? new Error(status))
  })
  await within(joined.promise, 'SUBSCRIBED')
  const p = await within(system.promise, 'system message')
  assert.equal(p.status, 'ok', p.message)
  assert.equal(p.message, 'Subscribed to PostgreSQL')
}

test('INSERT/UPDATE/DELETE with filters, several bindings routed by id', async (t) => {
  const table = `js_${uniqueName('t').replace(/-/g, '_')}`
  sql(`create table ${table} (id int primary key, room int, body text);
       alter table ${table} replica identity full;
       alter publication supabase_realtime add table ${table};`)
  const c = client()
  t.after(() => c.disconnect())
  const ch = c.channel(uniqueName('pg'))
  const got = { room1: [], all: [], updates: [], deletes: [] }
  ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table, filter: 'room=eq.1' }, (p) => got.room1.push(p))
  ch.on('postgres_changes', { event: '*', schema: 'public', table }, (p) => got.all.push(p))
  ch.on('postgres_changes', { event: 'UPDATE', schema: 'public', table, filter: 'room=in.(1,2)' }, (p) => got.updates.push(p))
  ch.on('postgres_changes', { event: 'DELETE', schema: 'public', table }, (p) => got.deletes.push(p))
  await subscribedToPostgres(ch)
  sql(`insert into ${table} values (1, 1, 'one'), (2, 3, 'two');
       update ${table} set body = 'uno' where id = 1;
       delete from ${table} where id = 2;`)
  await eventually(() => got.all.length === 4 && got.deletes.length === 1, 'all changes')
  assert.deepEqual(got.room1.map((p) => p.new), [{ id: 1, room: 1, body: 'one' }])
  assert.deepEqual(got.all.map((p) => p.eventType), ['INSERT', 'INSERT', 'UPDATE', 'DELETE'])
  assert.equal(got.updates.length, 1)
  assert.deepEqual(got.updates[0].old, { id: 1, room: 1, body: 'one' })
  assert.deepEqual(got.updates[0].new, { id: 1, room: 1, body: 'uno' })
  assert.deepEqual(got.deletes[0].old, { id: 2, room: 3, body: 'two' })
  assert.equal(got.room1[0].schema, 'public')
  assert.equal(got.room1[0].table, table)
  assert.match(got.room1[0].commit_timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.equal(got.room1[0].errors, null)
})

test('a binding on a table outside the publication gets the system error', async (t) => {
  const c = client()
  t.after(() => c.disconnect())
  const ch = c.channel(uniqueName('pg'))
  ch.on('postgres_changes', { event: '*', schema: 'public', table: 'not_published_anywhere' }, () => {})
  const system = deferred()
  ch.on('system', {}, (p) => system.resolve(p))
  ch.subscribe()
  const p = await within(system.promise, 'system error')
  assert.equal(p.status, 'error')
  assert.equal(
    p.message,
    'Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [event: *, schema: public, table: not_published_anywhere, filters: [], select: nil]',
  )
})

test('two users against an RLS table each see only their rows', async (t) => {
  const table = `js_${uniqueName('rls').replace(/-/g, '_')}`
  sql(`create table ${table} (id int primary key, owner uuid, body text);
       alter table ${table} enable row level security;
       create policy own on ${table} for select to authenticated using (owner = auth.uid());
       alter publication supabase_realtime add table ${table};`)
  const [a, b] = ['aaaaaaaa-1111-4111-8111-111111111111', 'bbbbbbbb-2222-4222-8222-222222222222']
  const seen = {}
  for (const sub of [a, b]) {
    const c = client()
    t.after(() => c.disconnect())
    await c.setAuth(user(sub))
    const ch = c.channel(uniqueName('rls'))
    seen[sub] = []
    ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table }, (p) => seen[sub].push(p.new.id))
    await subscribedToPostgres(ch)
  }
  sql(`insert into ${table} values (1, '${a}', 'a1'), (2, '${b}', 'b1'), (3, '${a}', 'a2'), (4, null, 'nobody');`)
  await eventually(() => seen[a].length === 2 && seen[b].length === 1, 'own rows')
  // Prove nothing else follows: a row for b arrives after everything before it.
  sql(`insert into ${table} values (5, '${b}', 'b2');`)
  await eventually(() => seen[b].length === 2, 'marker row')
  assert.deepEqual(seen[a], [1, 3])
  assert.deepEqual(seen[b], [2, 5])
})

test('a token refresh re-subscribes with the new claims', async (t) => {
  const table = `js_${uniqueName('refresh').replace(/-/g, '_')}`
  sql(`create table ${table} (id int primary key, owner text);
       alter table ${table} enable row level security;
       create policy mine on ${table} for select to authenticated using (owner = auth.jwt() ->> 'sub');
       alter publication supabase_realtime add table ${table};`)
  const c = client()
  t.after(() => c.disconnect())
  await c.setAuth(user('first'))
  const ch = c.channel(uniqueName('refresh'))
  const system = []
  ch.on('system', {}, (p) => system.push(p))
  const ids = []
  ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table }, (p) => ids.push(p.new.id))
  await subscribedToPostgres(ch)
  sql(`insert into ${table} values (1, 'first'), (2, 'second');`)
  await eventually(() => ids.length === 1, 'row of the first user')
  await c.setAuth(user('second'))
  await eventually(() => system.filter((p) => p.message === 'Subscribed to PostgreSQL').length === 2, 're-subscription')
  sql(`insert into ${table} values (3, 'first'), (4, 'second');`)
  await eventually(() => ids.length === 2, 'row of the second user')
  assert.deepEqual(ids, [1, 4])
})

test('a private channel admits the user its policy allows and refuses the other', async (t) => {
  const a = 'aaaaaaaa-3333-4333-8333-333333333333'
  const b = 'bbbbbbbb-4444-4444-8444-444444444444'
  sql(`drop policy if exists js_private_read on realtime.messages;
       create policy js_private_read on realtime.messages for select to authenticated
         using (realtime.topic() = 'js-private-' || auth.uid()::text);`)
  const topic = `js-private-${a}`
  const ca = client()
  t.after(() => ca.disconnect())
  await ca.setAuth(user(a))
  const cha = ca.channel(topic, { config: { private: true } })
  const ok = deferred()
  cha.subscribe((status, err) => (status === 'SUBSCRIBED' ? ok.resolve() : ok.reject(err ?? new Error(status))))
  await within(ok.promise, 'allowed join')

  const cb = client()
  t.after(() => cb.disconnect())
  await cb.setAuth(user(b))
  const chb = cb.channel(topic, { config: { private: true } })
  const refused = deferred()
  chb.subscribe((status, err) => { if (status === 'CHANNEL_ERROR') refused.resolve(err) })
  const err = await within(refused.promise, 'refused join', 15000)
  assert.equal(err.message, `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`)
})

test('realtime.send reaches a private subscriber', async (t) => {
  const a = 'aaaaaaaa-5555-4555-8555-555555555555'
  sql(`drop policy if exists js_send_read on realtime.messages;
       create policy js_send_read on realtime.messages for select to authenticated
         using (realtime.topic() = 'js-send-' || auth.uid()::text);`)
  const topic = `js-send-${a}`
  const c = client()
  t.after(() => c.disconnect())
  await c.setAuth(user(a))
  const ch = c.channel(topic, { config: { private: true } })
  const got = deferred()
  ch.on('broadcast', { event: 'db-event' }, (m) => got.resolve(m))
  const ok = deferred()
  ch.subscribe((status, err) => (status === 'SUBSCRIBED' ? ok.resolve() : ok.reject(err ?? new Error(status))))
  await within(ok.promise, 'join')
  sql(`select realtime.send('{"hello": "world"}'::jsonb, 'db-event', '${topic}', true);`)
  const m = await within(got.promise, 'database broadcast')
  assert.equal(m.payload.hello, 'world')
  assert.ok(m.meta?.id, 'meta.id from the database')
  assert.equal(m.payload.id, m.meta.id)
})

test('persist with send() and httpSend(), replay on join, replication_ready (realtime-js 2.119)', async (t) => {
  const a = 'aaaaaaaa-6666-4666-8666-666666666666'
  sql(`drop policy if exists js_replay_read on realtime.messages;
       drop policy if exists js_replay_write on realtime.messages;
       create policy js_replay_read on realtime.messages for select to authenticated
         using (realtime.topic() like 'js-replay-%');
       create policy js_replay_write on realtime.messages for insert to authenticated
         with check (realtime.topic() like 'js-replay-%');`)
  const topic = uniqueName('js-replay')
  const since = Date.now() - 1000
  const sender = client()
  t.after(() => sender.disconnect())
  await sender.setAuth(user(a))
  const out = sender.channel(topic, { config: { private: true, broadcast: { ack: true } } })
  const ready = deferred()
  out.subscribe((status, err) => (status === 'SUBSCRIBED' ? ready.resolve() : ready.reject(err ?? new Error(status))))
  await within(ready.promise, 'sender join')
  assert.equal(await out.send({ type: 'broadcast', event: 'note', payload: { n: 1 }, persist: true }), 'ok')
  assert.equal(await out.send({ type: 'broadcast', event: 'note', payload: { n: 2 }, persist: { ttl: 3600 } }), 'ok')
  assert.deepEqual(await out.httpSend('note', { n: 3 }, { persist: true }), { success: true })

  // A late joiner with replay gets the three, oldest first, marked replayed, then live ones.
  const late = client()
  t.after(() => late.disconnect())
  await late.setAuth(user(a))
  const ch = late.channel(topic, {
    config: { private: true, broadcast: { replay: { since, limit: 10 }, replication_ready: true } },
  })
  const got = []
  ch.on('broadcast', { event: 'note' }, (m) => got.push(m))
  const system = deferred()
  ch.on('system', {}, (p) => { if (p.extension === 'system') system.resolve(p) })
  const joined = deferred()
  ch.subscribe((status, err) => (status === 'SUBSCRIBED' ? joined.resolve() : joined.reject(err ?? new Error(status))))
  await within(joined.promise, 'replaying join')
  await eventually(() => got.length === 3, 'three replayed messages')
  assert.deepEqual(got.map((m) => m.payload.n), [1, 2, 3])
  for (const m of got) {
    assert.equal(m.meta?.replayed, true)
    assert.match(m.meta?.id ?? '', /^[0-9a-f-]{36}$/)
  }
  const p = await within(system.promise, 'replication_ready system event')
  assert.equal(p.status, 'ok')
  assert.equal(p.message, 'Replication connection established')
  assert.equal(await out.send({ type: 'broadcast', event: 'note', payload: { n: 4 }, persist: true }), 'ok')
  await eventually(() => got.length === 4, 'the live stored message')
  assert.equal(got[3].payload.n, 4)
  assert.ok(got[3].meta?.id, 'a live stored message carries meta.id')
  assert.notEqual(got[3].meta?.replayed, true)
})
