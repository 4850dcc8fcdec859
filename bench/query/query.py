#!/usr/bin/env python3
"""TSBS-style time-series queries: quiver (official Python client) vs DuckDB.

usage: query.py QUIVER_BINARY ROWS

Builds two TSBS `cpu` tables (hostname SYMBOL over 100 hosts, ten DOUBLE
usage metrics, one row per host every 10 s; `cpu2` the same shape 3 s later
with other values), ROWS rows each, ingested through the official client's
dataframe() into a fresh `quiver serve`. The server is stopped once to
export both tables with `quiver export --format parquet`; DuckDB 2.0 loads
those files into in-memory tables (the same rows). Then each query kind runs
on both, taking turns (this VM's speed drifts between minutes), RUNS times
each or more (fast queries until the pair has taken MIN_SECONDS); the
script prints the median wall time of both and quiver/DuckDB.
Quiver's time includes the client decoding the result into Arrow; DuckDB's
includes `.to_arrow_table()` of its result. Results are compared (row counts and the
first numeric column's sum) so both did the same work. With
QUIVER_BENCH_EXPLAIN=1 set, quiver's EXPLAIN ANALYZE of each query goes to
stderr.

Query kinds (TSBS's, in QuestDB's SQL for quiver, DuckDB's for DuckDB):
  single-groupby-1-1-1   max of 1 metric, 1 host, 1 hour, by minute
  single-groupby-5-8-1   max of 5 metrics, 8 hosts, 1 hour, by minute
  double-groupby-all     avg of all 10 metrics per host and hour, 12 hours
  high-cpu-all           every row with usage_user > 90 in 12 hours
  lastpoint              the newest row per host
  groupby-orderby-limit  max per minute before a time, newest 5 minutes
  asof-join              cpu ASOF JOIN cpu2 per host over 6 hours
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import questdb

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import start_server  # noqa: E402

binary, rows = sys.argv[1], int(sys.argv[2])
RUNS = 7
# Fast queries run more often: until both sides together have taken this
# long (or MAX_RUNS), so a median is not decided by a half-second bout of
# this VM's drift.
MIN_SECONDS = 3.0
MAX_RUNS = 101
HOSTS = 100
METRICS = ["usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait",
           "usage_irq", "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice"]
START = pd.Timestamp("2016-01-01T00:00:00")
CHUNK = 1_000_000


def frames(table_rows, offset_s, seed):
    """The table's rows in chunks: 100 hosts per 10 s step, in time order."""
    rng = np.random.default_rng(seed)
    hosts = pd.Categorical.from_codes(np.tile(np.arange(HOSTS), CHUNK // HOSTS),
                                      categories=[f"host_{h}" for h in range(HOSTS)])
    steps = (table_rows + HOSTS - 1) // HOSTS
    per_chunk = CHUNK // HOSTS
    for first in range(0, steps, per_chunk):
        n_steps = min(per_chunk, steps - first)
        n = n_steps * HOSTS
        secs = (np.repeat(np.arange(first, first + n_steps), HOSTS) * 10 + offset_s).astype("int64")
        cols = {"hostname": hosts[:n]}
        for m in METRICS:
            cols[m] = rng.random(n) * 100.0
        cols["ts"] = START + pd.to_timedelta(secs, unit="s")
        yield pd.DataFrame(cols)


def span_end(table_rows):
    steps = (table_rows + HOSTS - 1) // HOSTS
    return START + pd.Timedelta(seconds=10 * steps)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def queries(end):
    rng = np.random.default_rng(3)
    hours = max(1, int((end - START).total_seconds() // 3600) - 13)
    h1 = START + pd.Timedelta(hours=int(rng.integers(0, hours)))
    h12 = START + pd.Timedelta(hours=int(rng.integers(0, hours)))
    h6 = START + pd.Timedelta(hours=int(rng.integers(0, hours)))
    host = f"host_{int(rng.integers(0, HOSTS))}"
    hosts8 = [f"host_{h}" for h in rng.choice(HOSTS, 8, replace=False)]
    in8 = ", ".join(f"'{h}'" for h in hosts8)
    m5 = METRICS[:5]
    cut = START + (end - START) * 0.7
    w1 = (iso(h1), iso(h1 + pd.Timedelta(hours=1)))
    w12 = (iso(h12), iso(h12 + pd.Timedelta(hours=12)))
    w6 = (iso(h6), iso(h6 + pd.Timedelta(hours=6)))
    avg10 = ", ".join(f"avg({m}) AS {m}" for m in METRICS)
    max5 = ", ".join(f"max({m}) AS {m}" for m in m5)
    return [
        ("single-groupby-1-1-1",
         f"SELECT timestamp, max(usage_user) AS usage_user FROM cpu WHERE hostname IN ('{host}') "
         f"AND timestamp >= '{w1[0]}' AND timestamp < '{w1[1]}' SAMPLE BY 1m",
         f"SELECT time_bucket(INTERVAL '1 minute', timestamp) AS t, max(usage_user) AS usage_user FROM cpu "
         f"WHERE hostname IN ('{host}') AND timestamp >= '{w1[0]}' AND timestamp < '{w1[1]}' GROUP BY t ORDER BY t"),
        ("single-groupby-5-8-1",
         f"SELECT timestamp, {max5} FROM cpu WHERE hostname IN ({in8}) "
         f"AND timestamp >= '{w1[0]}' AND timestamp < '{w1[1]}' SAMPLE BY 1m",
         f"SELECT time_bucket(INTERVAL '1 minute', timestamp) AS t, {max5} FROM cpu "
         f"WHERE hostname IN ({in8}) AND timestamp >= '{w1[0]}' AND timestamp < '{w1[1]}' GROUP BY t ORDER BY t"),
        ("double-groupby-all",
         f"SELECT timestamp, hostname, {avg10} FROM cpu "
         f"WHERE timestamp >= '{w12[0]}' AND timestamp < '{w12[1]}' SAMPLE BY 1h",
         f"SELECT time_bucket(INTERVAL '1 hour', timestamp) AS t, hostname, {avg10} FROM cpu "
         f"WHERE timestamp >= '{w12[0]}' AND timestamp < '{w12[1]}' GROUP BY t, hostname ORDER BY t, hostname"),
        ("high-cpu-all",
         f"SELECT * FROM cpu WHERE usage_user > 90.0 AND timestamp >= '{w12[0]}' AND timestamp < '{w12[1]}'",
         f"SELECT * FROM cpu WHERE usage_user > 90.0 AND timestamp >= '{w12[0]}' AND timestamp < '{w12[1]}'"),
        ("lastpoint",
         "SELECT * FROM cpu LATEST ON timestamp PARTITION BY hostname",
         "SELECT * FROM cpu QUALIFY row_number() OVER (PARTITION BY hostname ORDER BY timestamp DESC) = 1"),
        ("groupby-orderby-limit",
         f"SELECT timestamp, max(usage_user) AS usage_user FROM cpu WHERE timestamp < '{iso(cut)}' "
         f"SAMPLE BY 1m ORDER BY timestamp DESC LIMIT 5",
         f"SELECT time_bucket(INTERVAL '1 minute', timestamp) AS t, max(usage_user) AS usage_user FROM cpu "
         f"WHERE timestamp < '{iso(cut)}' GROUP BY t ORDER BY t DESC LIMIT 5"),
        ("asof-join",
         f"SELECT count() AS n, avg(b.usage_user) AS usage_user FROM cpu a ASOF JOIN "
         f"(SELECT * FROM cpu2 WHERE timestamp >= '{w6[0]}' AND timestamp < '{w6[1]}') b ON (hostname) "
         f"WHERE a.timestamp >= '{w6[0]}' AND a.timestamp < '{w6[1]}'",
         f"SELECT count(*) AS n, avg(b.usage_user) AS usage_user FROM "
         f"(SELECT * FROM cpu WHERE timestamp >= '{w6[0]}' AND timestamp < '{w6[1]}') a ASOF LEFT JOIN "
         f"(SELECT * FROM cpu2 WHERE timestamp >= '{w6[0]}' AND timestamp < '{w6[1]}') b "
         f"ON a.hostname = b.hostname AND a.timestamp >= b.timestamp"),
    ]


def digest(table):
    """Row count and the sum of the first floating-point column."""
    for name in table.column_names:
        if pa.types.is_floating(table.schema.field(name).type):
            col = table.column(name).to_pylist()
            return table.num_rows, round(sum(v for v in col if v is not None), 3)
    return table.num_rows, None


def main():
    work = tempfile.mkdtemp(prefix="quiver-query-bench-")
    data_dir = os.path.join(work, "data")
    try:
        server, port = start_server(binary, data_dir)
        conf = f"ws::addr=127.0.0.1:{port};"
        t0 = time.perf_counter()
        with questdb.connect(conf) as db:
            for table, offset, seed in [("cpu", 0, 1), ("cpu2", 3, 2)]:
                for df in frames(rows, offset, seed):
                    db.dataframe(df, table_name=table, at="ts")
        print(f"ingested 2 x {rows:,} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        server.terminate()
        server.wait()
        con = duckdb.connect()
        for table in ["cpu", "cpu2"]:
            path = os.path.join(work, f"{table}.parquet")
            subprocess.run([binary, "export", "--data-dir", data_dir, "--table", table,
                            "--format", "parquet", "--out", path], check=True,
                           stderr=subprocess.DEVNULL)
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{path}')")
        con.execute("SET TimeZone = 'UTC'")
        server, port = start_server(binary, data_dir)
        conf = f"ws::addr=127.0.0.1:{port};"
        print(f"DuckDB {duckdb.__version__}, {os.cpu_count()} cores; median of {RUNS} runs each "
              f"or more (until {MIN_SECONDS:.0f} s per query, at most {MAX_RUNS})\n")
        print(f"{'query':<24}{'quiver ms':>11}{'DuckDB ms':>11}{'quiver/DuckDB':>15}  rows")
        results = []
        with questdb.connect(conf) as db:
            for name, qsql, dsql in queries(span_end(rows)):
                times = {"quiver": [], "duckdb": []}
                got = {}
                started = time.perf_counter()
                while len(times["quiver"]) < RUNS or (
                        time.perf_counter() - started < MIN_SECONDS and len(times["quiver"]) < MAX_RUNS):
                    t = time.perf_counter()
                    got["quiver"] = db.query(qsql).to_arrow()
                    times["quiver"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    got["duckdb"] = con.sql(dsql).to_arrow_table()
                    times["duckdb"].append(time.perf_counter() - t)
                dq, dd = digest(got["quiver"]), digest(got["duckdb"])
                same = dq[0] == dd[0] and (dq[1] is None or dd[1] is None or abs(dq[1] - dd[1]) <= 1e-6 * max(1, abs(dd[1])))
                if os.environ.get("QUIVER_BENCH_EXPLAIN"):
                    plan = db.query(f"EXPLAIN ANALYZE {qsql}").to_arrow()
                    print(plan.column(1)[0].as_py(), file=sys.stderr)
                mq, md = statistics.median(times["quiver"]), statistics.median(times["duckdb"])
                results.append((name, mq, md))
                print(f"{name:<24}{mq * 1e3:>11.1f}{md * 1e3:>11.1f}{mq / md:>15.2f}  {dq[0]}"
                      + ("" if same else f"  RESULTS DIFFER: quiver {dq}, DuckDB {dd}"))
        worst = max(r[1] / r[2] for r in results)
        print(f"\nworst ratio {worst:.2f} (target <= 1.5, first bar 2.0)")
        server.terminate()
        server.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
