// Benchmark contestant: @supabase/realtime-js (Node, `ws` transport, default vsn 2.0.0).
// Usage: node contestant.mjs <scenario> <url> <key> <name> <n>   (see bench/src/main.rs)
import { performance } from 'node:perf_hooks'
import { RealtimeClient } from '@supabase/realtime-js'
import WebSocket from 'ws'

const [scenario, url, key, name, nArg] = process.argv.slice(2)
const n = Number(nArg)
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000)
const cpuS = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}
const result = (v) => process.stdout.write(`RESULT ${JSON.stringify(v)}\n`)
const ready = () => process.stdout.write('READY\n')
const newClient = () => new RealtimeClient(url, { params: { apikey: key }, transport: WebSocket })

function subscribed(channel) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`join timeout ${channel.topic}`)), 30000)
    channel.subscribe((status, err) => {
      if (status === 'SUBSCRIBED') {
        clearTimeout(timer)
        resolve()
      } else if (status !== 'CLOSED') {
        clearTimeout(timer)
        reject(err ?? new Error(status))
      }
    })
  })
}

const stdinClosed = () =>
  new Promise((resolve) => {
    process.stdin.on('end', resolve)
    process.stdin.resume()
  })

// Receives `n` broadcasts (event `e`) on channel `name` from the replay source; the figures
// cover messages 2..=n (the clock starts at the first delivery).
async function throughput(client, name, n) {
  const ch = client.channel(name)
  let count = 0
  let t0 = 0
  let c0 = 0
  const done = new Promise((resolve) => {
    ch.on('broadcast', { event: 'e' }, (msg) => {
      void msg.payload.i
      count += 1
      if (count === 1) {
        t0 = performance.now()
        c0 = cpuS()
      }
      if (count === n) resolve()
    })
  })
  await subscribed(ch)
  await done
  return { n: n - 1, secs: (performance.now() - t0) / 1000, cpu_s: cpuS() - c0, received: count }
}

async function main() {
  if (scenario === 'throughput') {
    const client = newClient()
    result(await throughput(client, name, n))
    process.exit(0)
  } else if (scenario === 'channels') {
    // n joined channels: n - 1 idle ones, then the busy one (its join starts the replay).
    const client = newClient()
    const idle = []
    for (let i = 1; i < n; i++) idle.push(client.channel(`idle-${i}`))
    await Promise.all(idle.map(subscribed))
    const rss = process.memoryUsage().rss
    const msgs = Number(name.split('-')[1])
    result({ ...(await throughput(client, name, msgs)), rss, channels: n })
    process.exit(0)
  } else if (scenario === 'latency' || scenario === 'pg') {
    const pg = scenario === 'pg'
    const client = newClient()
    const ch = client.channel(pg ? 'pg' : name)
    const lat = []
    let resolveDone
    const done = new Promise((r) => (resolveDone = r))
    const record = (sent) => {
      lat.push(nowUs() - sent)
      if (lat.length === n) resolveDone()
    }
    let pgReady
    if (pg) {
      pgReady = new Promise((resolve, reject) => {
        ch.on('system', {}, (p) => {
          if (p.extension === 'postgres_changes') (p.status === 'ok' ? resolve : reject)(p)
        })
      })
      ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'bench_rows' }, (c) =>
        record(Number(c.new.t_us)),
      )
    } else {
      ch.on('broadcast', { event: 'e' }, (msg) => record(msg.payload.t))
    }
    await subscribed(ch)
    if (pg) await pgReady // realtime-js reports SUBSCRIBED on the join reply; changes flow after this
    ready()
    await done
    result({ lat_us: lat })
    process.exit(0)
  } else if (scenario === 'memory') {
    const client = newClient()
    const chans = []
    for (let i = 0; i < n; i++) chans.push(client.channel(`${name}-${i}`))
    await Promise.all(chans.map(subscribed))
    ready()
    await stdinClosed()
    process.exit(0)
  } else if (scenario === 'connect') {
    const ms = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      const client = newClient()
      const ch = client.channel(`${name}-${i}`)
      await subscribed(ch)
      ms.push(performance.now() - t0)
      await client.removeAllChannels()
      client.disconnect()
    }
    result({ ms })
    process.exit(0)
  } else {
    throw new Error(`unknown scenario ${scenario}`)
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
