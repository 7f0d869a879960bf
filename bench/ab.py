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

from run import start_source, throughput_rounds

bins = sys.argv[1].split(",")
rounds = int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 300000
source, url = start_source()
try:
    runs = throughput_rounds({b: ([b], n) for b in bins}, url, rounds)
finally:
    source.stop()
for b in bins:
    rates, _, _, errors = runs[b]
    if len(rates) < rounds:
        sys.exit(f"{b}: {errors[0]}")
base = statistics.median(runs[bins[0]][0])
for b in bins:
    rates, cpus, _, _ = runs[b]
    m = statistics.median(rates)
    print(f"{b}: median {m:,.0f} msgs/s ({(m / base - 1) * 100:+.1f} %), "
          f"CPU {statistics.median(cpus) * 10:.3f} µs/msg, runs {[round(x / 1000) for x in rates]} k")
