#!/usr/bin/env python3
"""S1-narrow egress: the official Python client's to_arrow() from quiver vs a replay peer.

usage: egress.py QUIVER_BINARY ROWS

Ingests ROWS S1-narrow rows into a fresh `quiver serve`, then times (best of 9,
wall clock, connection already open) `db.query("SELECT * FROM s1").to_arrow()`
against quiver and the replay peer taking turns (so both see the same machine:
this VM's speed drifts by a quarter between minutes), and:

* quiver;
* a null egress peer (replay_peer.py, its own process) that answers each query
  with the exact frames quiver sent for it, recorded beforehand by a raw
  WebSocket client and held in memory: the client's ceiling for this result.
  The binding target is quiver >= 0.8x the replay peer's throughput;
* the same table read back from a local Arrow IPC file (warm page cache), with
  pyarrow memory-mapped and through an OSFile, as a local-read reference.

The recording pass itself (raw socket reader, no decoding) is also reported: it
shows how fast quiver produces the frames when the reader does almost no work.
Wire bytes are the WebSocket frames of the response (headers included,
SERVER_INFO excluded). Every run checks the row count; the replay result is
compared with quiver's.
"""
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import questdb

from qwpws import (OP_BINARY, OP_CLOSE, QUERY_ERROR, QWP_HEADER_LEN, RESULT_END, SERVER_INFO,
                   TERMINATORS, FrameReader, client_frame, connect_egress, query_request,
                   read_varint)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import s1_frame, start_server  # noqa: E402

binary, rows = sys.argv[1], int(sys.argv[2])
HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = "s1"
SQL = f"SELECT * FROM {TABLE}"
RUNS = 9


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def proc_cpu(pid):
    """User + system CPU seconds of a process so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem(pid):
    """(VmRSS, VmHWM) of a process, in MB."""
    st = open(f"/proc/{pid}/status").read()
    kb = lambda k: int(re.search(rf"{k}:\s+(\d+) kB", st).group(1))
    return kb("VmRSS") / 1024, kb("VmHWM") / 1024


def time_interleaved(q_port, r_port, server_pid):
    """RUNS `to_arrow()` of SQL from quiver and from the replay peer, taking
    turns (quiver, peer, quiver, ...) over one pooled connection each, so
    both see the same machine (this VM's speed drifts by a quarter between
    minutes). Returns, per side, (seconds, client CPU s, server CPU s or
    None) of its best run and its first run's table."""
    sides = {"quiver": (q_port, server_pid), "replay": (r_port, None)}
    best, first = {}, {}
    dbs = {k: questdb.connect(f"ws::addr=127.0.0.1:{port};") for k, (port, _) in sides.items()}
    try:
        for i in range(RUNS):
            for label, db in dbs.items():
                pid = sides[label][1]
                s0 = proc_cpu(pid) if pid else 0.0
                c0, t0 = time.process_time(), time.perf_counter()
                table = db.query(SQL).to_arrow()
                secs, cpu = time.perf_counter() - t0, time.process_time() - c0
                server_cpu = proc_cpu(pid) - s0 if pid else None
                if table.num_rows != rows:
                    raise SystemExit(f"{label}: got {table.num_rows:,} rows, expected {rows:,}")
                log(f"  {label} run {i + 1}: {secs:.3f} s")
                if label not in best or secs < best[label][0]:
                    best[label] = (secs, cpu, server_cpu)
                first.setdefault(label, table)
                del table
    finally:
        for db in dbs.values():
            db.close()
    return best, first


def record(port, path):
    """Runs SQL over a raw WebSocket connection and writes SERVER_INFO plus every
    response frame to `path` as [u32 LE length][payload] records. Returns
    (wire bytes, frames, seconds from request to terminator)."""
    sock, rest = connect_egress("127.0.0.1", port)
    try:
        reader = FrameReader(sock, rest, keep=True)
        _, op, off, n, _ = reader.next()
        info = reader.payload(off, n)
        if op != OP_BINARY or info[QWP_HEADER_LEN] != SERVER_INFO:
            raise SystemExit(f"expected SERVER_INFO, got opcode {op} {info[:16].hex()}")
        start = reader.pos
        frames = []
        t0 = time.perf_counter()
        sock.sendall(client_frame(OP_BINARY, query_request(1, SQL)))
        while True:
            fin, op, off, n, _ = reader.next()
            if not fin or op != OP_BINARY:
                raise SystemExit(f"unexpected WebSocket frame: fin={fin} opcode={op}")
            frames.append((off, n))
            kind = reader.buf[off + QWP_HEADER_LEN]
            if kind in TERMINATORS:
                break
        secs = time.perf_counter() - t0
        body = reader.buf[off + QWP_HEADER_LEN:off + n]
        if kind == QUERY_ERROR:
            (mlen,) = struct.unpack_from("<H", body, 10)
            raise SystemExit(f"quiver: QUERY_ERROR 0x{body[9]:02x}: {bytes(body[12:12 + mlen]).decode()}")
        if kind != RESULT_END:
            raise SystemExit(f"quiver answered a SELECT with message kind 0x{kind:02x}")
        _, pos = read_varint(body, 9)
        total_rows, _ = read_varint(body, pos)
        if total_rows != rows:
            raise SystemExit(f"RESULT_END says {total_rows:,} rows, expected {rows:,}")
        wire = reader.pos - start
        sock.sendall(client_frame(OP_CLOSE, struct.pack(">H", 1000)))
    finally:
        sock.close()
    view = memoryview(reader.buf)
    with open(path, "wb") as f:
        f.write(struct.pack("<I", len(info)) + info)
        for off, n in frames:
            f.write(struct.pack("<I", n))
            f.write(view[off:off + n])
    return wire, len(frames), secs


def start_replay_peer(frames_path):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "replay_peer.py"), frames_path],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        p.kill()
        raise SystemExit(f"replay peer did not start: {line!r}")
    return p, int(m.group(1))


def time_ipc(table, path):
    """Writes `table` as an Arrow IPC file; best-of-RUNS read_all() seconds,
    memory-mapped and through an OSFile, and the file size."""
    # The IPC file format allows one dictionary per field; the client's
    # batches each carry their own SYMBOL dictionary.
    table = table.unify_dictionaries()
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    out = {}
    for name, open_source in (("mmap", pa.memory_map), ("OSFile", pa.OSFile)):
        best = None
        for _ in range(RUNS):
            t0 = time.perf_counter()
            with open_source(path) as src:
                got = pa.ipc.open_file(src).read_all()
            secs = time.perf_counter() - t0
            if got.num_rows != rows:
                raise SystemExit(f"IPC {name}: read {got.num_rows:,} rows, expected {rows:,}")
            del got
            best = secs if best is None else min(best, secs)
        log(f"  IPC {name}: best {best:.3f} s")
        out[name] = best
    return out, os.path.getsize(path)


def main():
    tmp = tempfile.mkdtemp(prefix="quiver-egress-")
    data_dir = os.path.join(tmp, "data")
    server = peer = None
    try:
        log(f"building {rows:,} S1-narrow rows...")
        df = s1_frame(rows)
        server, port = start_server(binary, data_dir)
        log(f"ingesting into quiver on 127.0.0.1:{port}...")
        t0 = time.perf_counter()
        with questdb.connect(f"ws::addr=127.0.0.1:{port};") as db:
            db.dataframe(df, table_name=TABLE, at="ts")
        log(f"  ingested in {time.perf_counter() - t0:.1f} s")
        del df
        os.sync()  # no writeback of the ingest left to compete with the reads

        log("recording quiver's frames...")
        frames_path = os.path.join(tmp, "frames.bin")
        wire, nframes, rec_secs = record(port, frames_path)
        log(f"  {wire:,} wire bytes in {nframes} frames ({rec_secs:.3f} s)")

        log("to_arrow() from quiver and from the replay peer, taking turns...")
        peer, peer_port = start_replay_peer(frames_path)
        best, first = time_interleaved(port, peer_port, server.pid)
        (q_secs, q_cpu, q_server_cpu), q_table = best["quiver"], first["quiver"]
        (r_secs, r_cpu, _), r_table = best["replay"], first["replay"]
        rss, hwm = proc_mem(server.pid)
        if not r_table.equals(q_table):
            raise SystemExit("the replay peer's result differs from quiver's")
        del r_table
        peer.terminate()
        peer.wait()
        os.unlink(frames_path)

        log("Arrow IPC file reads...")
        ipc, ipc_size = time_ipc(q_table, os.path.join(tmp, "s1.arrow"))
        del q_table

        print(f"\nS1-narrow, {rows:,} rows, {wire / rows:.1f} wire bytes/row "
              f"({wire / 1e6:.1f} MB in {nframes} frames), questdb {questdb.__version__}, "
              f"pyarrow {pa.__version__}; best of {RUNS}")
        print(f"{'run':<40} {'seconds':>8} {'M rows/s':>9} {'MB/s':>8} {'client CPU s':>13}")

        def line(name, secs, nbytes, cpu=None):
            cpu = f"{cpu:13.3f}" if cpu is not None else f"{'':13}"
            print(f"{name:<40} {secs:8.3f} {rows / secs / 1e6:9.2f} {nbytes / secs / 1e6:8.1f} {cpu}")

        line("quiver to_arrow()", q_secs, wire, q_cpu)
        line("replay peer to_arrow()", r_secs, wire, r_cpu)
        line("Arrow IPC file, memory-mapped", ipc["mmap"], ipc_size)
        line("Arrow IPC file, OSFile", ipc["OSFile"], ipc_size)
        line("quiver raw frames, no decode (1 run)", rec_secs, wire)
        print("(MB/s: wire bytes for the network runs, file bytes "
              f"({ipc_size / rows:.1f} B/row) for the IPC file)")
        ratio = r_secs / q_secs
        print(f"\nquiver / replay peer: {ratio:.2f}x  (target >= 0.80: "
              f"{'met' if ratio >= 0.8 else 'NOT met'})")
        print(f"quiver / IPC file read: {ipc['mmap'] / q_secs:.3f}x memory-mapped, "
              f"{ipc['OSFile'] / q_secs:.3f}x OSFile")
        print(f"quiver server: {q_server_cpu:.3f} CPU s in its best to_arrow() run; "
              f"RSS {rss:.0f} MB, peak {hwm:.0f} MB (after ingest and queries)")
    except BaseException:
        # The server's own account of what went wrong, before its log goes.
        try:
            tail = open(data_dir + ".log").read()[-3000:]
            if tail:
                log(f"--- quiver log (tail) ---\n{tail}")
        except OSError:
            pass
        raise
    finally:
        for p in (peer, server):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    # SIGTERM (e.g. from a timeout) still stops the server and removes the data.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
