#!/usr/bin/env python3
"""S1-narrow dataframe() over line protocol (http::) next to the same frame
over QWP (ws::), into a release quiver, in the same run.

usage: ilp.py QUIVER_BINARY ROWS [RUNS]
Prints, per transport, the median seconds of RUNS runs (each into a fresh
server), rows/s, wire MB/s (bytes through the loopback interface during the
run, /proc/net/dev: payload both ways plus TCP/IP headers; the answers are
tiny) and the ratio of line protocol to QWP.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import questdb

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import s1_frame, start_server  # noqa: E402

binary, rows = sys.argv[1], int(sys.argv[2])
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3


def loopback_bytes():
    with open("/proc/net/dev") as f:
        for line in f:
            if line.strip().startswith("lo:"):
                return int(line.split(":")[1].split()[0])
    return 0


def run(df, transport):
    d = tempfile.mkdtemp(prefix="quiver-ilp-bench-")
    data = os.path.join(d, "data")
    proc, port = start_server(binary, data)
    try:
        os.sync()
        before = loopback_bytes()
        t0 = time.perf_counter()
        if transport == "ilp":
            with questdb.Sender.from_conf(f"http::addr=127.0.0.1:{port};") as sender:
                sender.dataframe(df, table_name="s1", at="ts")
        else:
            with questdb.connect(f"ws::addr=127.0.0.1:{port};query_pool_min=0;") as db:
                db.dataframe(df, table_name="s1", at="ts")
        secs = time.perf_counter() - t0
        wire = loopback_bytes() - before
        proc.terminate()
        proc.wait(timeout=120)
        out = subprocess.run([binary, "tables", "--data-dir", data],
                             capture_output=True, text=True).stdout
        stored = int(re.search(r"s1 \((\d+) rows", out).group(1))
        assert stored == len(df), f"{transport}: stored {stored} rows, sent {len(df)}"
        return secs, wire
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


print(f"building {rows:,} S1-narrow rows...", file=sys.stderr)
df = s1_frame(rows)
results = {"ilp": [], "qwp": []}
for i in range(runs):
    for transport in ("ilp", "qwp"):
        secs, wire = run(df, transport)
        results[transport].append((secs, wire))
        print(f"run {i + 1} {transport}: {secs:.3f} s, {wire / rows:.1f} wire B/row",
              file=sys.stderr)

print(f"\nS1-narrow, {rows:,} rows, questdb {questdb.__version__}, median of {runs}")
print(f"{'transport':<34} {'seconds':>8} {'M rows/s':>9} {'wire B/row':>10} {'MB/s':>8}")
med = {}
for transport, name in (("ilp", "line protocol, http:: dataframe()"),
                        ("qwp", "QWP, ws:: dataframe()")):
    secs = statistics.median(s for s, _ in results[transport])
    wire = statistics.median(w for _, w in results[transport])
    med[transport] = secs
    print(f"{name:<34} {secs:8.3f} {rows / secs / 1e6:9.2f} {wire / rows:10.1f} {wire / secs / 1e6:8.1f}")
print(f"line protocol / QWP rows/s: {med['qwp'] / med['ilp']:.2f}x")
