#!/usr/bin/env python3
"""S1-narrow dataframe() ingest into quiver vs raw loopback TCP of the same bytes.

usage: ingest.py QUIVER_BINARY ROWS
Prints rows/s and MB/s for each run and the ratio to the TCP ceiling. Wire bytes
are what the server process read from its sockets (/proc/PID/io rchar delta).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import questdb

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import s1_frame, start_server  # noqa: E402

binary, rows = sys.argv[1], int(sys.argv[2])


def wait_for_idle_disk(limit=5.0, timeout=120.0):
    """Waits (up to `timeout` s) until the last 10 s had I/O pressure below
    `limit` %: leftover filesystem work (writeback, online discard of deleted
    files) slows the page-cache copies a run makes by up to 2x."""
    try:
        read = lambda: float(open("/proc/pressure/io").readline().split()[1].split("=")[1])
        pressure = read()
    except (OSError, IndexError, ValueError):
        return
    t0 = time.monotonic()
    if pressure >= limit:
        print(f"waiting for the disk to settle (I/O pressure {pressure:.1f}%)...", file=sys.stderr)
    while pressure >= limit and time.monotonic() - t0 < timeout:
        time.sleep(2)
        pressure = read()
    if pressure >= limit:
        print(f"disk still busy (I/O pressure {pressure:.1f}%); figures will be low", file=sys.stderr)


def run_quiver(df, durable):
    d = tempfile.mkdtemp(prefix="quiver-bench-")
    proc, port = start_server(binary, os.path.join(d, "data"))
    try:
        conf = f"ws::addr=127.0.0.1:{port};query_pool_min=0;"
        if durable:
            conf += "request_durable_ack=on;"
        # Start each run with no dirty pages left by the previous one, so a
        # run does not pay for its predecessor's writeback.
        os.sync()
        wait_for_idle_disk()
        with questdb.connect(conf) as db:
            t0 = time.perf_counter()
            db.dataframe(df, table_name="s1", at="ts")
            secs = time.perf_counter() - t0
        proc.terminate()
        proc.wait(timeout=120)
        # Wire bytes: what the server's sessions received (its log says).
        with open(os.path.join(d, "data") + ".log") as f:
            wire = sum(int(m) for m in re.findall(r"ingest session ended .*?bytes=(\d+)", f.read()))
        out = subprocess.run([binary, "tables", "--data-dir", os.path.join(d, "data")],
                             capture_output=True, text=True).stdout
        stored = int(re.search(r"s1 \((\d+) rows", out).group(1))
        assert stored == len(df), f"stored {stored} rows, sent {len(df)}"
        return secs, wire
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


def tcp_ceiling(nbytes):
    """Seconds to push nbytes over one loopback TCP connection (64 KiB sends)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    done = {}

    def sink():
        c, _ = srv.accept()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            n = c.recv_into(view)
            if n == 0:
                break
            got += n
        done["got"] = got
        c.close()

    t = threading.Thread(target=sink)
    t.start()
    cli = socket.create_connection(("127.0.0.1", port))
    chunk = os.urandom(1 << 20)
    t0 = time.perf_counter()
    sent = 0
    while sent < nbytes:
        k = min(len(chunk), nbytes - sent)
        cli.sendall(chunk[:k] if k < len(chunk) else chunk)
        sent += k
    cli.shutdown(socket.SHUT_WR)
    t.join()
    secs = time.perf_counter() - t0
    cli.close()
    srv.close()
    return secs


print(f"building {rows:,} S1-narrow rows...", file=sys.stderr)
df = s1_frame(rows)
results = []
for durable in (False, True):
    secs, wire = run_quiver(df, durable)
    results.append(("quiver dataframe()" + (" durable" if durable else ""), secs, wire))
wire = results[0][2]
results.append(("loopback TCP, same bytes (ceiling)", tcp_ceiling(wire), wire))
ceiling = results[-1][1]
print(f"\nS1-narrow, {rows:,} rows, {wire / rows:.1f} wire bytes/row, questdb {questdb.__version__}")
print(f"{'run':<38} {'seconds':>9} {'M rows/s':>9} {'MB/s':>9} {'vs TCP':>8}")
for name, secs, _ in results:
    # Every run moves the same frames; the first run's count is the wire size.
    print(f"{name:<38} {secs:9.3f} {rows / secs / 1e6:9.2f} {wire / secs / 1e6:9.1f} {ceiling / secs:7.2f}x")
