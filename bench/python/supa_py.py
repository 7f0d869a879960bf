"""Benchmark contestant: our client through the Python binding (`supa_realtime`, uniffi).

Usage: supa_py.py <scenario> <url> <key> <name> <n>   (see bench/src/main.rs)
Callbacks run on the library's dispatch thread and receive realtime's dicts, in batches; default
options (the binding's queue capacity, drops read from ``metrics()["dropped_events"]``).
"""

import asyncio
import json
import sys
import threading
import time

from supa_realtime import RealtimeClient


def result(v):
    print("RESULT " + json.dumps(v), flush=True)


def ready():
    print("READY", flush=True)


async def main(scenario, url, key, name, n):
    if scenario == "throughput":
        client = RealtimeClient(url, key)
        ch = client.channel(name)
        st = {"count": 0, "t0": 0.0, "c0": 0.0, "t1": 0.0, "c1": 0.0}
        done = threading.Event()

        def on_broadcast(msg):
            msg["payload"]["i"]
            st["count"] += 1
            now = time.perf_counter()
            if st["count"] == 1:
                st["t0"], st["c0"] = now, time.process_time()
            st["t1"] = now  # the last delivery: runs with drops end before N
            if st["count"] == n:
                st["c1"] = time.process_time()
                done.set()

        ch.on_broadcast("e", on_broadcast)
        await ch.subscribe(timeout=30)
        deadline = time.monotonic() + 300
        while not done.is_set() and time.monotonic() < deadline:
            await asyncio.to_thread(done.wait, 0.5)
            if st["count"] + client.metrics()["dropped_events"] >= n:
                break
        dropped = client.metrics()["dropped_events"]
        if not done.is_set():
            st["c1"] = time.process_time()
        result({"n": st["count"] - 1, "secs": st["t1"] - st["t0"], "cpu_s": st["c1"] - st["c0"],
                "received": st["count"], "dropped": dropped})
        client.shutdown()
    elif scenario in ("latency", "pg"):
        pg = scenario == "pg"
        client = RealtimeClient(url, key)
        ch = client.channel("pg" if pg else name)
        lat = []
        done = threading.Event()

        def record(sent):
            lat.append(time.time_ns() // 1000 - sent)
            if len(lat) == n:
                done.set()

        if pg:
            ch.on_postgres_changes("INSERT", lambda c: record(int(c["data"]["record"]["t_us"])),
                                   table="bench_rows")
        else:
            ch.on_broadcast("e", lambda m: record(m["payload"]["t"]))
        await ch.subscribe(timeout=30)
        ready()
        await asyncio.to_thread(done.wait, 120)
        result({"lat_us": list(lat)})
        client.shutdown()
    elif scenario == "memory":
        client = RealtimeClient(url, key)
        chans = [client.channel(f"{name}-{i}") for i in range(n)]
        await asyncio.gather(*(c.subscribe(timeout=30) for c in chans))
        ready()
        await asyncio.to_thread(sys.stdin.read)
        client.shutdown()
    elif scenario == "connect":
        ms = []
        for i in range(n):
            t0 = time.perf_counter()
            client = RealtimeClient(url, key)
            ch = client.channel(f"{name}-{i}")
            await ch.subscribe(timeout=30)
            ms.append((time.perf_counter() - t0) * 1e3)
            client.shutdown()
        result({"ms": ms})
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], a[3], int(a[4])))
