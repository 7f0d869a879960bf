"""The orchestrator of scripts/bench: runs every scenario for every contestant on loopback and
writes docs/benchmarks.md, docs/benchmarks.json and the PNG charts (docs/bench-*.png).

Run through scripts/bench, which builds and installs everything first. Settings (env):
  BENCH_REPS          repetitions per figure (default 5; pg, memory and connect use BENCH_REPS_SLOW, 3)
  BENCH_MSGS          inbound messages per throughput run (200000); BENCH_MSGS_PY for the Python
                      contestants (20000)
  BENCH_LAT_MSGS      latency messages per run (5000) at BENCH_LAT_RATE per second (1000)
  BENCH_PG_ROWS       rows per postgres run (400) at BENCH_PG_RATE per second (100)
  BENCH_PG_SERVER_ARGS extra server flags for the postgres runs, e.g. `--changes-source poll`
                      to measure the polling source the stream replaced
  BENCH_MEM_SIZES     channel counts for the memory scenario (1,100,1000)
  BENCH_CH_SIZES      joined-channel counts for the channels scenario (1,100,1000,10000)
  BENCH_CH_MSGS       broadcasts to the one busy channel per channels run (100000)
  BENCH_CONNECT_ITERS connect+join iterations per run (10)
  BENCH_ONLY          comma-separated contestant keys to run (default: all)
  BENCH_SCENARIOS     comma-separated scenarios (throughput,latency,pg,memory,connect,size,channels)
  BENCH_MERGE=1       keep the sections of the existing benchmarks.json that this run does not
                      measure (to refresh some scenarios without rerunning all of them)
  BENCH_FAT_LTO=1     also build and size the library with fat LTO and one codegen unit
  BENCH_DIST=1        also the C contestant on the `dist` profile's static library (`c_dist`) and
                      the size of the released shared library (dist/*.whl, from scripts/dist)
  BENCH_OUT           where the report goes (default docs/)
Every contestant speaks the same command line: <scenario> <url> <key> <name> <n>; it prints
READY when subscribed (latency, memory, pg) and one `RESULT <json>` line.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = TARGET / "release" / "supa-bench"
SERVER = TARGET / "release" / "supa-realtime-server"
VENV_PY = str(ROOT / "bench" / ".venv" / "bin" / "python")
DOCS = Path(os.environ.get("BENCH_OUT", ROOT / "docs"))


def env_int(name, default):
    return int(os.environ.get(name, default))


REPS = env_int("BENCH_REPS", 5)
REPS_SLOW = env_int("BENCH_REPS_SLOW", 3)
MSGS = env_int("BENCH_MSGS", 200000)
MSGS_PY = env_int("BENCH_MSGS_PY", 20000)
LAT_MSGS = env_int("BENCH_LAT_MSGS", 5000)
LAT_RATE = env_int("BENCH_LAT_RATE", 1000)
PG_ROWS = env_int("BENCH_PG_ROWS", 400)
PG_RATE = env_int("BENCH_PG_RATE", 100)
MEM_SIZES = [int(x) for x in os.environ.get("BENCH_MEM_SIZES", "1,100,1000").split(",")]
CONNECT_ITERS = env_int("BENCH_CONNECT_ITERS", 10)
CH_SIZES = [int(x) for x in os.environ.get("BENCH_CH_SIZES", "1,100,1000,10000").split(",")]
CH_MSGS = env_int("BENCH_CH_MSGS", 100000)
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "throughput,latency,pg,memory,connect,size,channels").split(",")
MERGE = os.environ.get("BENCH_MERGE") == "1"

# key -> (label, argv prefix, slow?)
CONTESTANTS = {
    "raw": ("raw limit (tokio-tungstenite + serde_json)", [str(BIN), "raw"], False),
    "ours": ("supa_realtime (Rust API)", [str(BIN), "ours"], False),
    "c": ("supa_realtime (C ABI)", [str(ROOT / "bench/c/build/contestant")], False),
    "c_dist": ("supa_realtime (C ABI, dist profile)", [str(ROOT / "bench/c/build/contestant-dist")], False),
    "py": ("supa_realtime (Python binding)", [VENV_PY, str(ROOT / "bench/python/supa_py.py")], True),
    "js": ("@supabase/realtime-js (Node, ws)", ["node", str(ROOT / "bench/node/contestant.mjs")], False),
    "realtime_py": ("realtime (Python, PyPI)", [VENV_PY, str(ROOT / "bench/python/realtime_py.py")], True),
    "phoenix": ("phoenix_channels_client (Rust)", [str(ROOT / "bench/phoenix/target/release/supa-bench-phoenix")], False),
    # JVM, one launcher written by bench/kotlin/build: our Kotlin binding and supabase-kt.
    "kt": ("supa_realtime (Kotlin binding, JVM)", [str(ROOT / "bench/kotlin/target/contestant"), "ours"], False),
    "supabase_kt": ("supabase-kt realtime-kt 3.1.4 (JVM, Ktor OkHttp)", [str(ROOT / "bench/kotlin/target/contestant"), "supabase-kt"], False),
}
ONLY = os.environ.get("BENCH_ONLY")
PG_CONTESTANTS = ["raw", "ours", "c", "py", "js"]
CH_CONTESTANTS = ["ours", "js", "phoenix"]


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def available(key):
    argv = CONTESTANTS[key][1]
    if ONLY and key not in ONLY.split(","):
        return False
    exe = argv[0]
    if key == "py":
        ok = subprocess.run([VENV_PY, "-c", "import supa_realtime"], capture_output=True).returncode == 0
        return ok
    return shutil.which(exe) is not None or Path(exe).exists()


# ---------------------------------------------------------------- processes


class Proc:
    """A contestant or helper process whose stdout lines we watch."""

    def __init__(self, argv, stdin=subprocess.DEVNULL):
        self.p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.err: list[str] = []
        self.cv = threading.Condition()
        self.eof = False
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.err, False), daemon=True).start()

    def _read(self, f, into, is_stdout):
        for line in f:
            with self.cv:
                into.append(line.rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            if is_stdout:
                self.eof = True
            self.cv.notify_all()

    def wait_line(self, pred, timeout):
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                if self.eof:
                    return None
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(min(left, 0.1))

    def result(self, timeout):
        line = self.wait_line(lambda l: l.startswith("RESULT "), timeout)
        return json.loads(line[len("RESULT "):]) if line else None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def why(self):
        return " | ".join(self.err[-3:]) or f"exit {self.p.poll()}"


def start_server(extra=()):
    p = Proc([str(SERVER), "--listen", "127.0.0.1:0", "--max-channels-per-client", "5000", *extra])
    line = p.wait_line(lambda l: l.startswith("service_role key: "), 30)
    if not line:
        raise SystemExit(f"server did not start: {p.why()}")
    url = next(l for l in p.lines if l.startswith("listening on ")).split(" ", 2)[2]
    key = next(l for l in p.lines if l.startswith("anon key: ")).split(": ", 1)[1]
    return p, url.replace("http://", "ws://") + "/realtime/v1", key


def start_source():
    p = Proc([str(BIN), "source", "127.0.0.1:0"])
    line = p.wait_line(lambda l: l.startswith("listening on "), 30)
    if not line:
        raise SystemExit(f"frame source did not start: {p.why()}")
    return p, line.split(" ", 2)[2]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- statistics


def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def agg(values):
    """median, min, max of the repetitions (None entries are failed runs)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals)}


# ---------------------------------------------------------------- scenarios


def receive_run(argv, errors):
    """One receiving run: its RESULT, or None (with the reason in `errors`) when it failed."""
    p = Proc(argv)
    r = p.result(400)
    p.stop()
    if not r or r.get("n", 0) <= 0 or r.get("secs", 0) <= 0:
        errors.append(p.why())
        return None
    return r


def throughput_rounds(argvs, source_url, reps):
    """Runs the throughput scenario `reps` times for each contestant of `argvs` (key -> (argv
    prefix, messages)), interleaved: each round runs every contestant once, the order reversed
    every other round, so that load drift on a shared machine hits all alike (the ratios between
    them are what the report compares). Returns key -> (rates, CPU s per 100k, drop shares,
    errors), one entry per successful run."""
    keys = list(argvs)
    runs = {key: ([], [], [], []) for key in keys}
    for rep in range(reps):
        for key in keys if rep % 2 == 0 else keys[::-1]:
            argv, n = argvs[key]
            rates, cpus, drops, errors = runs[key]
            r = receive_run(argv + ["throughput", source_url, "bench-key", f"tp-{n}", str(n)], errors)
            if not r:
                continue
            rates.append(r["n"] / r["secs"])
            cpus.append(r["cpu_s"] / r["n"] * 100000)
            drops.append(r.get("dropped", 0) / n)
    return runs


def run_throughput(keys, source_url):
    msgs = {key: MSGS_PY if CONTESTANTS[key][2] else MSGS for key in keys}
    runs = throughput_rounds({key: (CONTESTANTS[key][1], msgs[key]) for key in keys}, source_url, REPS)
    out = {}
    for key in keys:
        rates, cpus, drops, errors = runs[key]
        out[key] = {"msgs_per_s": agg(rates), "cpu_s_per_100k": agg(cpus), "dropped_frac": agg(drops),
                    "msgs": msgs[key], "errors": errors[:2]}
        log("throughput", key, out[key]["msgs_per_s"], "dropped", out[key]["dropped_frac"])
    return out


def lat_stats(samples):
    warm = sorted(samples[len(samples) // 20:])  # the first 5 % warm up
    return {"p50": pct(warm, 50), "p99": pct(warm, 99), "p999": pct(warm, 99.9)}


def run_latency(keys, url, key_):
    out = {}
    for key in keys:
        label, argv, _ = CONTESTANTS[key]
        reps, errors, lost = [], [], []
        for rep in range(REPS):
            name = f"lat-{key}-{rep}-{int(time.time())}"
            p = Proc(argv + ["latency", url, key_, name, str(LAT_MSGS)])
            if not p.wait_line(lambda l: l == "READY", 60):
                errors.append(p.why())
                p.stop()
                continue
            s = subprocess.run([str(BIN), "send", url, key_, name, str(LAT_MSGS), str(LAT_RATE)],
                               capture_output=True, text=True, timeout=LAT_MSGS / LAT_RATE + 60)
            if s.returncode != 0:
                errors.append("sender: " + s.stderr.strip()[-200:])
            r = p.result(10)
            p.stop()
            if not r or not r.get("lat_us"):
                errors.append(p.why() or "no result (messages lost?)")
                continue
            lost.append(LAT_MSGS - len(r["lat_us"]))
            reps.append(lat_stats(r["lat_us"]))
        out[key] = {q: agg([x[q] for x in reps]) for q in ("p50", "p99", "p999")}
        out[key]["lost"] = lost
        out[key]["errors"] = errors[:2]
        log("latency", key, {q: (out[key][q] or {}).get("median") for q in ("p50", "p99", "p999")})
    return out


def run_pg(keys):
    out = {}
    tmp = tempfile.mkdtemp(prefix="supa-bench-pg.")
    dev = subprocess.run([str(ROOT / "scripts/dev-postgres"), "start", tmp], capture_output=True, text=True)
    m = re.search(r"DATABASE_URL=(\S+)", dev.stdout)
    if dev.returncode != 0 or not m:
        log("pg: dev-postgres failed:", dev.stderr[-300:])
        return {"error": "scripts/dev-postgres failed: " + dev.stderr.strip()[-300:]}
    db = m.group(1)
    server = None
    try:
        server, url, key_ = start_server(["--database-url", db, *os.environ.get("BENCH_PG_SERVER_ARGS", "").split()])
        setup = subprocess.run([str(BIN), "pg-setup", db], capture_output=True, text=True)
        if setup.returncode != 0:
            return {"error": "pg-setup: " + setup.stderr[-300:]}
        for key in keys:
            argv = CONTESTANTS[key][1]
            reps, errors, lost = [], [], []
            for rep in range(REPS_SLOW):
                p = Proc(argv + ["pg", url, key_, "pg", str(PG_ROWS)])
                if not p.wait_line(lambda l: l == "READY", 60):
                    errors.append(p.why())
                    p.stop()
                    continue
                ins = subprocess.run([str(BIN), "pg-insert", db, str(PG_ROWS), str(PG_RATE)],
                                     capture_output=True, text=True, timeout=PG_ROWS / PG_RATE + 60)
                if ins.returncode != 0:
                    errors.append("inserter: " + ins.stderr.strip()[-200:])
                r = p.result(15)
                p.stop()
                if not r or not r.get("lat_us"):
                    errors.append(p.why() or "no result")
                    continue
                lost.append(PG_ROWS - len(r["lat_us"]))
                reps.append(lat_stats(r["lat_us"]))
            out[key] = {q: agg([x[q] for x in reps]) for q in ("p50", "p99")}
            out[key]["lost"] = lost
            out[key]["errors"] = errors[:2]
            log("pg", key, {q: (out[key][q] or {}).get("median") for q in ("p50", "p99")})
    finally:
        if server:
            server.stop()
        subprocess.run([str(ROOT / "scripts/dev-postgres"), "stop", tmp], capture_output=True)
    return out


def run_memory(keys, url, key_):
    out = {}
    for key in keys:
        argv = CONTESTANTS[key][1]
        per_size, errors = {}, []
        for size in MEM_SIZES:
            vals = []
            for rep in range(REPS_SLOW):
                name = f"mem-{key}-{size}-{rep}-{int(time.time() * 1000)}"
                p = Proc(argv + ["memory", url, key_, name, str(size)], stdin=subprocess.PIPE)
                if p.wait_line(lambda l: l == "READY", 120):
                    time.sleep(0.5)  # let allocations settle
                    vals.append(rss_kb(p.p.pid) * 1024)
                else:
                    errors.append(p.why())
                try:
                    p.p.stdin.close()
                except OSError:
                    pass
                try:
                    p.p.wait(5)
                except subprocess.TimeoutExpired:
                    p.stop()
            per_size[size] = agg(vals)
        lo, hi = min(MEM_SIZES), max(MEM_SIZES)
        bpc = None
        if per_size.get(lo) and per_size.get(hi) and hi > lo:
            bpc = (per_size[hi]["median"] - per_size[lo]["median"]) / (hi - lo)
        out[key] = {"rss": {str(k): v for k, v in per_size.items()}, "bytes_per_channel": bpc,
                    "errors": errors[:2]}
        log("memory", key, {k: (v or {}).get("median") for k, v in per_size.items()}, "B/ch", bpc)
    return out


def run_channels(keys, source_url):
    """Throughput to one busy channel and RSS with 1..10,000 joined channels (the rest idle)."""
    out = {}
    for key in keys:
        argv = CONTESTANTS[key][1]
        per_size, errors = {}, []
        for size in CH_SIZES:
            rates, rss, drops = [], [], []
            for rep in range(REPS_SLOW):
                r = receive_run(argv + ["channels", source_url, "bench-key", f"tp-{CH_MSGS}-c{size}", str(size)],
                                errors)
                if not r:
                    continue
                rates.append(r["n"] / r["secs"])
                rss.append(r.get("rss"))
                drops.append(r.get("dropped", 0) / CH_MSGS)
            per_size[str(size)] = {"msgs_per_s": agg(rates), "rss": agg(rss), "dropped_frac": agg(drops)}
        lo, hi = str(min(CH_SIZES)), str(max(CH_SIZES))
        bpc = None
        if per_size[lo]["rss"] and per_size[hi]["rss"] and hi != lo:
            bpc = (per_size[hi]["rss"]["median"] - per_size[lo]["rss"]["median"]) / (int(hi) - int(lo))
        out[key] = {"sizes": per_size, "bytes_per_channel": bpc, "errors": errors[:2]}
        log("channels", key, {k: (v["msgs_per_s"] or {}).get("median") for k, v in per_size.items()},
            "B/ch", bpc)
    return out


def run_connect(keys, url, key_):
    out = {}
    for key in keys:
        argv = CONTESTANTS[key][1]
        warm, cold, errors = [], [], []
        for rep in range(REPS_SLOW):
            p = Proc(argv + ["connect", url, key_, f"conn-{key}-{rep}-{int(time.time())}", str(CONNECT_ITERS)])
            r = p.result(120)
            p.stop()
            if not r or not r.get("ms"):
                errors.append(p.why())
                continue
            cold.append(r["ms"][0])
            if len(r["ms"]) > 1:
                warm.append(statistics.median(r["ms"][1:]))
        out[key] = {"warm_ms": agg(warm), "cold_ms": agg(cold), "errors": errors[:2]}
        log("connect", key, (out[key]["warm_ms"] or {}).get("median"))
    return out


def run_size():
    so = TARGET / "release" / "libsupa_realtime.so"
    if not so.exists():
        return {"error": f"{so} not built"}
    tmp = Path(tempfile.mkdtemp()) / so.name
    shutil.copy(so, tmp)
    subprocess.run(["strip", str(tmp)], check=True)
    res = {"unstripped": so.stat().st_size, "stripped": tmp.stat().st_size}
    a = TARGET / "release" / "libsupa_realtime.a"
    if a.exists():
        res["staticlib"] = a.stat().st_size
    fat = TARGET / "bench-fat" / "release" / so.name
    if os.environ.get("BENCH_FAT_LTO") == "1" and fat.exists():
        tmp_fat = tmp.parent / "fat.so"
        shutil.copy(fat, tmp_fat)
        subprocess.run(["strip", str(tmp_fat)], check=True)
        res["stripped_fat_lto"] = tmp_fat.stat().st_size
    wheels = sorted((ROOT / "dist").glob("*.whl"))
    if os.environ.get("BENCH_DIST") == "1" and wheels:
        import zipfile

        with zipfile.ZipFile(wheels[-1]) as z:
            res["dist_wheel_library"] = z.getinfo("supa_realtime/_native/libsupa_realtime.so").file_size
    js = ROOT / "bench/node/node_modules/@supabase/realtime-js/dist/main"
    if js.exists():
        res["realtime_js_dist_main"] = sum(f.stat().st_size for f in js.rglob("*.js"))
    shutil.rmtree(tmp.parent, ignore_errors=True)
    return res


# ---------------------------------------------------------------- facts


def sh(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


def machine_facts():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    lock = (ROOT / "Cargo.lock").read_text()

    def locked(name):
        m = re.search(r'name = "%s"\nversion = "([^"]+)"' % re.escape(name), lock)
        return m.group(1) if m else "?"

    def pkg(path):
        try:
            return json.loads(Path(path).read_text())["version"]
        except Exception:
            return "?"

    pyver = sh(VENV_PY, "-c", "import importlib.metadata as m; print(m.version('realtime'))")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "rustc": sh("rustc", "--version"),
        "node": sh("node", "--version"),
        "python": sh(VENV_PY, "--version"),
        "commit": sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "dirty": bool(sh("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no")),
        "versions": {
            "supa-realtime": locked("supa-realtime"),
            "tokio-tungstenite (ours, raw)": locked("tokio-tungstenite"),
            "serde_json": locked("serde_json"),
            "@supabase/realtime-js": pkg(ROOT / "bench/node/node_modules/@supabase/realtime-js/package.json"),
            "ws": pkg(ROOT / "bench/node/node_modules/ws/package.json"),
            "realtime (PyPI)": pyver or "?",
            "phoenix_channels_client": "0.1.2",
        },
    }


def main():
    t_start = time.monotonic()
    load_start = os.getloadavg()
    keys = [k for k in CONTESTANTS if available(k)]
    # Why each contestant is left out: the report prints it next to the label.
    missing = {k: "only with BENCH_DIST=1" if k == "c_dist" else "its program did not build or is not installed"
               for k in CONTESTANTS if k not in keys and not (ONLY and k not in ONLY.split(","))}
    log("contestants:", keys, "missing:", list(missing))
    results = {"settings": {"reps": REPS, "reps_slow": REPS_SLOW, "msgs": MSGS, "msgs_py": MSGS_PY,
                            "lat_msgs": LAT_MSGS, "lat_rate": LAT_RATE, "pg_rows": PG_ROWS, "pg_rate": PG_RATE,
                            "pg_server_args": os.environ.get("BENCH_PG_SERVER_ARGS", ""),
                            "mem_sizes": MEM_SIZES, "connect_iters": CONNECT_ITERS,
                            "ch_sizes": CH_SIZES, "ch_msgs": CH_MSGS},
               "labels": {k: CONTESTANTS[k][0] for k in CONTESTANTS}, "missing": missing}
    source = server = None
    try:
        if "throughput" in SCENARIOS:
            source, src_url = start_source()
            results["throughput"] = run_throughput(keys, src_url)
            source.stop()
            source = None
        if "channels" in SCENARIOS:
            source, src_url = start_source()
            results["channels"] = run_channels([k for k in CH_CONTESTANTS if k in keys], src_url)
            source.stop()
            source = None
        if {"latency", "memory", "connect"} & set(SCENARIOS):
            server, url, key_ = start_server()
            if "latency" in SCENARIOS:
                results["latency"] = run_latency(keys, url, key_)
            if "memory" in SCENARIOS:
                results["memory"] = run_memory(keys, url, key_)
            if "connect" in SCENARIOS:
                results["connect"] = run_connect(keys, url, key_)
            server.stop()
            server = None
        if "pg" in SCENARIOS:
            results["pg"] = run_pg([k for k in PG_CONTESTANTS if k in keys])
        if "size" in SCENARIOS:
            results["size"] = run_size()
    finally:
        for p in (source, server):
            if p:
                p.stop()
    results["machine"] = machine_facts()
    results["machine"]["load_start"] = load_start
    results["machine"]["load_end"] = os.getloadavg()
    results["machine"]["duration_s"] = time.monotonic() - t_start
    DOCS.mkdir(exist_ok=True)
    saved = DOCS / "benchmarks.json"
    if MERGE and saved.exists():
        # Sections this run did not measure come from the saved run, which says when it ran.
        old = json.loads(saved.read_text())
        kept = []
        for k in ("throughput", "latency", "pg", "memory", "connect", "size", "channels"):
            if k not in old:
                continue
            if k not in results:
                results[k] = old[k]
                kept.append(k)
            elif k != "size":
                # Contestants this run left out keep their saved figures.
                extra = [c for c in old[k] if c not in results[k]]
                results[k].update({c: old[k][c] for c in extra})
                if extra:
                    kept.append(f"{k} ({', '.join(extra)})")
        results["settings"] = {**old.get("settings", {}), **results["settings"]}
        # So do the notes on contestants the saved run left out (e.g. c_dist without BENCH_DIST).
        ran = [k for k in CONTESTANTS if not (ONLY and k not in ONLY.split(","))]
        results["missing"] = {**{k: v for k, v in old.get("missing", {}).items() if k not in ran},
                              **results["missing"]}
        results["machine"]["merged"] = {"kept": kept, "from": old.get("machine", {}).get("date")}
    (DOCS / "benchmarks.json").write_text(json.dumps(results, indent=1) + "\n")
    import report  # bench/report.py

    report.write(results, DOCS)
    log(f"done in {results['machine']['duration_s']:.0f} s: {DOCS / 'benchmarks.md'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
