"""Benchmark contestant: the official Python `realtime` client (asyncio, websockets, vsn 1.0.0).

Usage: realtime_py.py <scenario> <url> <key> <name> <n>   (see bench/src/main.rs)
"""

import asyncio
import json
import sys
import time

from realtime import AsyncRealtimeClient


def result(v):
    print("RESULT " + json.dumps(v), flush=True)


def ready():
    print("READY", flush=True)


async def subscribed(channel):
    done = asyncio.get_running_loop().create_future()

    def on_status(status, err):
        s = str(getattr(status, "value", status))
        if done.done():
            return
        if s == "SUBSCRIBED":
            done.set_result(None)
        else:
            done.set_exception(RuntimeError(f"{s}: {err}"))

    await channel.subscribe(on_status)
    await asyncio.wait_for(done, 30)


async def main(scenario, url, key, name, n):
    if scenario == "throughput":
        client = AsyncRealtimeClient(url, token=key, auto_reconnect=False)
        ch = client.channel(name)
        state = {"count": 0, "t0": 0.0, "c0": 0.0}
        done = asyncio.get_running_loop().create_future()

        def on_broadcast(msg):
            msg["payload"]["i"]
            state["count"] += 1
            if state["count"] == 1:
                state["t0"], state["c0"] = time.perf_counter(), time.process_time()
            if state["count"] == n and not done.done():
                done.set_result((time.perf_counter(), time.process_time()))

        ch.on_broadcast("e", on_broadcast)
        await subscribed(ch)
        t1, c1 = await asyncio.wait_for(done, 300)
        result({"n": n - 1, "secs": t1 - state["t0"], "cpu_s": c1 - state["c0"], "received": state["count"]})
    elif scenario == "latency":
        client = AsyncRealtimeClient(url, token=key, auto_reconnect=False)
        ch = client.channel(name)
        lat = []
        done = asyncio.get_running_loop().create_future()

        def on_broadcast(msg):
            lat.append(time.time_ns() // 1000 - msg["payload"]["t"])
            if len(lat) == n and not done.done():
                done.set_result(None)

        ch.on_broadcast("e", on_broadcast)
        await subscribed(ch)
        ready()
        try:
            await asyncio.wait_for(done, 120)
        except asyncio.TimeoutError:
            pass
        result({"lat_us": lat})
    elif scenario == "memory":
        client = AsyncRealtimeClient(url, token=key, auto_reconnect=False)
        await client.connect()
        chans = [client.channel(f"{name}-{i}") for i in range(n)]
        await asyncio.gather(*(subscribed(c) for c in chans))
        ready()
        await asyncio.to_thread(sys.stdin.read)
    elif scenario == "connect":
        ms = []
        for i in range(n):
            t0 = time.perf_counter()
            client = AsyncRealtimeClient(url, token=key, auto_reconnect=False)
            ch = client.channel(f"{name}-{i}")
            await subscribed(ch)
            ms.append((time.perf_counter() - t0) * 1e3)
            await client.close()
        result({"ms": ms})
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], a[3], int(a[4])))
