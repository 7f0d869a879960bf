#!/usr/bin/env python3
"""Interleaved A/B throughput of C contestant builds against one replay source.

    python3 bench/ab.py BIN_A,BIN_B[,...] ROUNDS [MESSAGES]

Each round runs every binary once (the order reversed every other round, so that load drift on
this shared machine hits all alike) with the `throughput` scenario; prints each binary's median
messages/s, its difference from the first binary, and CPU per message. Used for docs/dist.md's
release-vs-dist comparison, e.g. after `BENCH_DIST=1 BENCH_ONLY=c,c_dist scripts/bench`:
`python3 bench/ab.py bench/c/build/contestant,bench/c/build/contestant-dist 10`.
"""
import statistics
import sys

from run import receive_run, start_source

bins = sys.argv[1].split(",")
rounds = int(sys.argv[2])
n = sys.argv[3] if len(sys.argv) > 3 else "300000"
source, url = start_source()
rates = {b: [] for b in bins}
cpu = {b: [] for b in bins}
try:
    for r in range(rounds):
        for b in bins if r % 2 == 0 else bins[::-1]:
            errors = []
            res = receive_run([b, "throughput", url, "bench-key", f"tp-{n}", n], errors)
            if not res:
                sys.exit(f"{b}: {errors[0]}")
            rates[b].append(res["n"] / res["secs"])
            cpu[b].append(res["cpu_s"] / res["n"] * 1e6)
finally:
    source.stop()
base = statistics.median(rates[bins[0]])
for b in bins:
    m = statistics.median(rates[b])
    print(f"{b}: median {m:,.0f} msgs/s ({(m / base - 1) * 100:+.1f} %), "
          f"CPU {statistics.median(cpu[b]):.3f} µs/msg, runs {[round(x / 1000) for x in rates[b]]} k")
