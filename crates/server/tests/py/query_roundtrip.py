#!/usr/bin/env python3
"""Egress (/read/v1) with the official client at its default settings.

usage: query_roundtrip.py PORT CASE

Each CASE loads data with db.dataframe(), reads it back with db.query()
and compares what came back with what was sent, in this script; any
difference is printed and the script exits non-zero. It prints
"ok CASE" at the end.

  types    one row group of every column type the DataFrame path sends
           (pyarrow), with NULLs; SELECT * must return the same values in
           the QuestDB types the client maps them to, through to_arrow(),
           to_pandas(), to_polars() and iter_rows().
  large    200,000 rows with a symbol column: SELECT * (many RESULT_BATCH
           frames, the symbol dictionary growing across them) in row
           order, iter_arrow() batches, a projection with a filter.
  sql      aggregates, filters, ORDER BY, LIMIT and expressions, checked
           against pandas computing the same over the data sent.
  binds    every bind type the client sends (None, bool, int, float, str,
           datetime, date, Decimal, UUID, TimestampMicros/Nanos) echoed by
           SELECT $1 in its QuestDB type, and binds in filters.
  writes   CREATE TABLE with every QuestDB type, INSERT ... VALUES of
           each type from SQL text and from binds, INSERT ... SELECT,
           ingest into the SQL-made table and SQL into an ingested one;
           each execute() answers EXEC_DONE with QuestDB's op type and
           row count, rows read back as written, and failed statements
           (bad values, a NULL designated timestamp, DDL not supported
           yet) change nothing; DROP TABLE, then the name reused by
           ingest; TRUNCATE TABLE; RENAME TABLE; RENAME and DROP COLUMN
           with ingest after them.
  timeseries  SAMPLE BY over rows with gaps, keys that appear and
           disappear and a daylight-saving change: keyed FILL(PREV),
           FILL(LINEAR), FILL(NULL) with FROM/TO and calendar days in
           America/New_York, each checked against pandas resampling the
           same rows; LATEST ON after a filter against pandas' newest row
           per key; ASOF and LT JOIN against pandas' merge_asof.
  errors   a syntax error, an unknown table and an unknown column each
           raise QuestDBError with the server's message, a query past its
           timeout= raises, cancel() stops a 10^9-row result mid-stream, and
           the same pooled connection then serves a good query.
"""
import datetime as dt
import ipaddress
import sys
import uuid
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import questdb

port = int(sys.argv[1])
case = sys.argv[2]
# Default settings: the client opens its reader pool eagerly.
conf = f"ws::addr=127.0.0.1:{port};"

BASE_NS = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
LARGE_ROWS = 200_000
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


def comparable(arr):
    """A column as plain Python values: dictionaries decoded, extension
    types as their storage."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    if isinstance(arr.type, pa.ExtensionType):
        arr = arr.storage
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr.to_pylist()


def ns_values(arr):
    """Integer nanoseconds of a timestamp or date column."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_date32(arr.type):
        arr = arr.cast(pa.timestamp("ms"))
    unit = arr.type.unit
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    ints = arr.cast(pa.timestamp(unit)).cast(pa.int64()).to_pylist()
    return [None if v is None else v * scale for v in ints]


def column_type(field):
    return (field.metadata or {}).get(b"questdb.column_type", b"").decode()


def table_types():
    """Every column type the DataFrame path sends, with NULLs; and the
    QuestDB type each one is stored as."""
    ts = pa.array(list(range(BASE_NS, BASE_NS + 4 * 1_000_000_000, 1_000_000_000)), pa.timestamp("ns"))
    l256_md = {b"questdb.column_type": b"long256"}
    columns = [
        ("i8", pa.array([1, None, -128, 127], pa.int8()), "int"),
        ("i16", pa.array([1000, -1000, None, 32767], pa.int16()), "int"),
        ("i32", pa.array([None, 2**31 - 1, -5, 0], pa.int32()), "long"),
        ("i64", pa.array([2**40, None, -(2**63) + 1, 0], pa.int64()), "long"),
        ("f32", pa.array([1.5, None, -0.25, 3e38], pa.float32()), "float"),
        ("f64", pa.array([None, 2.5, -1e-10, 6.02e23], pa.float64()), "double"),
        ("flag", pa.array([True, True, False, True], pa.bool_()), "boolean"),
        ("s", pa.array(["s0", None, "sß 🦞", ""], pa.string()), "varchar"),
        ("ls", pa.array(["large", "ünï", None, "z"], pa.large_string()), "varchar"),
        ("sym", pa.array(["alpha", "βeta", None, "alpha"], pa.string()).dictionary_encode(), "symbol"),
        ("d_ms", pa.array([1_700_000_000_123, None, -1, 0], pa.timestamp("ms")), "date"),
        ("t_us", pa.array([1_700_000_000_000_001, 0, None, 1_000], pa.timestamp("us", tz="UTC")), "timestamp"),
        ("t_ns", pa.array([1_700_000_000_000_000_001, None, -5, 0], pa.timestamp("ns")), "timestamp_nanos"),
        ("d32", pa.array([dt.date(2024, 2, 29), None, dt.date(1970, 1, 1), dt.date(1969, 12, 31)], pa.date32()), "date"),
        ("dec", pa.array([Decimal("1234567.891"), Decimal("-0.001"), None, Decimal("0")], pa.decimal128(10, 3)), "decimal128"),
        ("arr", pa.array([[1.0, 2.0], None, [], [-0.5, float("inf")]], pa.list_(pa.float64())), "double_array"),
        ("arr2", pa.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0]], None, [[6.0, 7.0, 8.0]]],
                          pa.list_(pa.list_(pa.float64()))), "double_array"),
        ("bin", pa.array([b"\x00\xff", b"", None, b"bytes"], pa.binary()), "binary"),
        ("u", pa.array([uuid.UUID("12345678-9abc-def0-1234-56789abcdef0").bytes, None,
                        uuid.UUID("ffffffff-0000-0000-0000-000000000001").bytes,
                        uuid.UUID("00000000-0000-0000-0000-000000000000").bytes], pa.uuid()), "uuid"),
        ("l256", pa.array([(2**200 + 5).to_bytes(32, "little"), None, bytes(range(32)), bytes(32)],
                          pa.binary(32)), "long256"),
        ("ip", pa.array([0xC0A80114, None, 0x0A000001, 0xFFFFFFFF], pa.uint32()), "ipv4"),
        ("ch", pa.array([ord("A"), ord("é"), 0x20AC, ord("z")], pa.uint16()), "char"),
        ("geo", pa.array([0b1101000011000110110, None, 0, 1], pa.int32()), "geohash"),
    ]
    fields = [pa.field(n, a.type, metadata=l256_md if n == "l256" else None) for n, a, _ in columns]
    fields.append(pa.field("ts", pa.timestamp("ns")))
    table = pa.Table.from_arrays([a for _, a, _ in columns] + [ts], schema=pa.schema(fields))
    types = {n: t for n, _, t in columns}
    types["timestamp"] = "timestamp_nanos"
    return table, types


def case_types(db):
    sent, types = table_types()
    db.dataframe(sent, table_name="rt_types", at="ts",
                 schema_overrides={"ip": "ipv4", "ch": "char", "geo": ("geohash", 20)})
    got = db.query("SELECT * FROM rt_types").to_arrow()
    check("column names", got.column_names, [n for n in types])
    check("rows", got.num_rows, sent.num_rows)
    for field in got.schema:
        check(f"{field.name} type", column_type(field), types.get(field.name))
    for name in sent.column_names:
        got_name = "timestamp" if name == "ts" else name
        if got_name not in got.column_names:
            continue
        s, g = sent.column(name), got.column(got_name)
        if pa.types.is_timestamp(s.type) or pa.types.is_date32(s.type):
            check(name, ns_values(g), ns_values(s))
        else:
            check(name, comparable(g), comparable(s))
    # The pandas conversion sees the same values.
    df = db.query("SELECT i64, s, sym, t_us FROM rt_types").to_pandas()
    check("pandas i64", [None if pd.isna(v) else int(v) for v in df["i64"]], [2**40, None, -(2**63) + 1, 0])
    check("pandas s", [None if pd.isna(v) else v for v in df["s"]], ["s0", None, "sß 🦞", ""])
    check("pandas sym", [None if pd.isna(v) else v for v in df["sym"]], ["alpha", "βeta", None, "alpha"])
    check("pandas t_us", [None if pd.isna(v) else v.value for v in df["t_us"]],
          [1_700_000_000_000_001_000, 0, None, 1_000_000])

    # to_polars(): the same values as sent, SYMBOL as Categorical and
    # timestamps as UTC Datetime.
    import polars as pl
    frame = db.query("SELECT * FROM rt_types").to_polars()
    check("polars columns", frame.columns, got.column_names)
    check("polars sym dtype", isinstance(frame.schema["sym"], pl.Categorical), True)
    check("polars t_us dtype", frame.schema["t_us"], pl.Datetime("us", "UTC"))
    check("polars t_ns dtype", frame.schema["t_ns"], pl.Datetime("ns", "UTC"))
    as_arrow = frame.to_arrow()
    for name in sent.column_names:
        got_name = "timestamp" if name == "ts" else name
        s_col, p_col = sent.column(name), as_arrow.column(got_name)
        if pa.types.is_timestamp(s_col.type) or pa.types.is_date32(s_col.type):
            check(f"polars {name}", ns_values(p_col), ns_values(s_col))
        elif name in ("sym", "s", "ls"):
            check(f"polars {name}", comparable(p_col.cast(pa.large_string())), comparable(s_col))
        elif name == "u":
            def as_uuid(v):
                return v if v is None or isinstance(v, uuid.UUID) else uuid.UUID(bytes=bytes(v))
            check(f"polars {name}", [as_uuid(v) for v in comparable(p_col)],
                  [as_uuid(v) for v in comparable(s_col)])
        else:
            check(f"polars {name}", comparable(p_col), comparable(s_col))

    # iter_rows(): Python objects per row, as the client maps each type.
    cols = ["i64", "f64", "flag", "s", "sym", "t_us", "u", "ip", "ch", "l256", "dec", "bin"]
    rows = list(db.query(f"SELECT {', '.join(cols)} FROM rt_types").iter_rows())
    utc = dt.timezone.utc
    want_rows = []
    for i in range(sent.num_rows):
        def v(name):
            return sent.column(name)[i].as_py()
        t_us = v("t_us")
        u = v("u")
        l256 = v("l256")
        want_rows.append((
            v("i64"), v("f64"), v("flag"), v("s"), v("sym"),
            None if t_us is None else t_us.astimezone(utc),
            None if u is None else uuid.UUID(bytes=bytes(u)) if isinstance(u, bytes) else u,
            None if v("ip") is None else ipaddress.IPv4Address(v("ip")),
            chr(v("ch")), None if l256 is None else int.from_bytes(l256, "little"),
            v("dec"), v("bin"),
        ))
    check("iter_rows", [tuple(r) for r in rows], want_rows)


def frame_large():
    i = np.arange(LARGE_ROWS, dtype=np.int64)
    return pd.DataFrame({
        "i": i,
        "f": i.astype(np.float64) * 0.5,
        "sym": pd.Categorical.from_codes(i % 7, [f"s{k}" for k in range(7)]),
        "s": np.array([f"row-{k}" for k in range(LARGE_ROWS)], dtype=object),
        "ts": pd.to_datetime(i * 1_000 + BASE_NS, unit="ns"),
    })


def case_large(db):
    df = frame_large()
    db.dataframe(df, table_name="rt_large", at="ts")
    got = db.query("SELECT * FROM rt_large").to_arrow()
    check("rows", got.num_rows, LARGE_ROWS)
    check("i", got.column("i").to_pylist(), df["i"].tolist())
    check("f", got.column("f").to_pylist(), df["f"].tolist())
    check("sym", comparable(got.column("sym")), df["sym"].astype(str).tolist())
    check("s", got.column("s").to_pylist(), df["s"].tolist())
    check("timestamp", ns_values(got.column("timestamp")), (df["ts"].astype("int64")).tolist())
    # Streaming: several batches, none larger than QuestDB's 16,384 rows.
    sizes = [b.num_rows for b in db.query("SELECT i, sym FROM rt_large").iter_arrow()]
    check("batch rows total", sum(sizes), LARGE_ROWS)
    if len(sizes) < 2 or max(sizes) > 16_384:
        failures.append(f"batch sizes {sizes[:5]}... ({len(sizes)} batches)")
    # A projection with a filter.
    got = db.query("SELECT s, i FROM rt_large WHERE i % 1000 = 7").to_arrow()
    want = df[df["i"] % 1000 == 7]
    check("filter s", got.column("s").to_pylist(), want["s"].tolist())
    check("filter i", got.column("i").to_pylist(), want["i"].tolist())


def case_sql(db):
    df = frame_large()
    db.dataframe(df, table_name="rt_sql", at="ts")
    got = db.query("SELECT count(*) AS n, sum(i) AS total, min(f) AS lo, max(f) AS hi FROM rt_sql").to_arrow()
    check("count", got.column("n").to_pylist(), [LARGE_ROWS])
    check("sum", got.column("total").to_pylist(), [int(df["i"].sum())])
    check("min", got.column("lo").to_pylist(), [float(df["f"].min())])
    check("max", got.column("hi").to_pylist(), [float(df["f"].max())])
    got = db.query("SELECT sym, count(*) AS n, avg(f) AS a FROM rt_sql GROUP BY sym ORDER BY sym").to_arrow()
    g = df.groupby(df["sym"].astype(str)).agg(n=("i", "size"), a=("f", "mean")).sort_index()
    check("group keys", comparable(got.column("sym")), g.index.tolist())
    check("group counts", got.column("n").to_pylist(), g["n"].tolist())
    got_avg = got.column("a").to_pylist()
    if len(got_avg) != len(g) or any(abs(x - y) > 1e-9 * max(1.0, abs(y)) for x, y in zip(got_avg, g["a"])):
        failures.append(f"group avg: got {got_avg}, want {g['a'].tolist()}")
    got = db.query("SELECT i, s FROM rt_sql WHERE sym = 's3' ORDER BY i DESC LIMIT 5").to_arrow()
    want = df[df["sym"] == "s3"].sort_values("i", ascending=False).head(5)
    check("order/limit i", got.column("i").to_pylist(), want["i"].tolist())
    check("order/limit s", got.column("s").to_pylist(), want["s"].tolist())
    got = db.query("SELECT i * 2 + 1 AS x, upper(s) AS u, f > 10 AS big FROM rt_sql WHERE i < 3").to_arrow()
    check("expr x", got.column("x").to_pylist(), [1, 3, 5])
    check("expr u", got.column("u").to_pylist(), ["ROW-0", "ROW-1", "ROW-2"])
    check("expr big", got.column("big").to_pylist(), [False, False, False])
    got = db.query("SELECT * FROM rt_sql WHERE i < 0").to_arrow()
    check("empty rows", got.num_rows, 0)
    # The client sends SYMBOL columns first, so the table was created so.
    check("empty columns", got.column_names, ["sym", "i", "f", "s", "timestamp"])


def frame_time_series():
    """Three symbols over 48 hours from 2024-11-02T12:00Z (New York leaves
    daylight saving at 06:00Z on the 3rd); each symbol skips some hours,
    s2 starts late and s0 stops early."""
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2024-11-02T12:00:00")
    rows = []
    for h in range(48):
        for k in range(3):
            if (h * 7 + k * 3) % 5 == 0 or (k == 2 and h < 6) or (k == 0 and h > 40):
                continue
            for _ in range(int(rng.integers(1, 4))):
                minute = int(rng.integers(0, 60 * 60 * 1_000_000))
                rows.append((f"s{k}", float(rng.normal(100, 10)), int(rng.integers(1, 100)),
                             start + pd.Timedelta(hours=h) + pd.Timedelta(microseconds=minute)))
    rows.sort(key=lambda r: r[3])
    return pd.DataFrame({
        "sym": pd.Categorical([r[0] for r in rows]),
        "px": [r[1] for r in rows],
        "qty": np.array([r[2] for r in rows], dtype=np.int64),
        "ts": pd.to_datetime([r[3] for r in rows]),
    })


def close_lists(what, got, want):
    bad = len(got) != len(want) or any(
        (g is None) != (w is None) or (g is not None and abs(g - w) > 1e-9 * max(1.0, abs(w)))
        for g, w in zip(got, want))
    if bad:
        failures.append(f"{what}: got {got[:12]}..., want {want[:12]}...")


def none_if_nan(values):
    return [None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for v in values]


def case_timeseries(db):
    df = frame_time_series()
    db.dataframe(df, table_name="rt_ts", at="ts")
    syms = sorted(df["sym"].astype(str).unique())
    df["bucket"] = df["ts"].dt.floor("h")
    # Keyed FILL(PREV): every symbol in every hour, NULL before its first.
    got = db.query("SELECT timestamp, sym, avg(px) a, sum(qty) q FROM rt_ts SAMPLE BY 1h FILL(PREV)").to_arrow()
    g = df.groupby([df["bucket"], df["sym"].astype(str)]).agg(a=("px", "mean"), q=("qty", "sum"))
    hours = pd.date_range(df["bucket"].min(), df["bucket"].max(), freq="h")
    want = g.reindex(pd.MultiIndex.from_product([hours, syms])).groupby(level=1).ffill()
    check("prev rows", got.num_rows, len(want))
    check("prev buckets", ns_values(got.column("timestamp")),
          [int(t.value) for t in want.index.get_level_values(0)])
    check("prev keys", comparable(got.column("sym")), list(want.index.get_level_values(1)))
    close_lists("prev avg", got.column("a").to_pylist(), none_if_nan(want["a"].tolist()))
    check("prev sum", got.column("q").to_pylist(),
          [None if np.isnan(v) else int(v) for v in want["q"].tolist()])
    # FILL(LINEAR) over one symbol's half hours.
    got = db.query("SELECT timestamp, avg(px) a FROM rt_ts WHERE sym = 's1' SAMPLE BY 30m FILL(LINEAR)").to_arrow()
    s1 = df[df["sym"] == "s1"].set_index("ts")["px"].resample("30min").mean().interpolate(method="linear")
    check("linear buckets", ns_values(got.column("timestamp")), [int(t.value) for t in s1.index])
    close_lists("linear avg", got.column("a").to_pylist(), s1.tolist())
    # FROM/TO with FILL(NULL): empty hours before and after the data.
    got = db.query("SELECT timestamp, count() n FROM rt_ts WHERE sym = 's2' SAMPLE BY 1h "
                   "FROM '2024-11-02T10:00:00Z' TO '2024-11-04T14:00:00Z' FILL(NULL)").to_arrow()
    s2 = df[df["sym"] == "s2"].groupby("bucket").size()
    span = pd.date_range("2024-11-02T10:00:00", "2024-11-04T13:00:00", freq="h")
    s2 = s2.reindex(span)
    check("from/to buckets", ns_values(got.column("timestamp")), [int(t.value) for t in span])
    check("from/to counts", got.column("n").to_pylist(), [None if np.isnan(v) else int(v) for v in s2])
    # Calendar days in New York across the end of daylight saving.
    got = db.query("SELECT timestamp, count() n, sum(qty) q FROM rt_ts SAMPLE BY 1d "
                   "ALIGN TO CALENDAR TIME ZONE 'America/New_York'").to_arrow()
    local = df["ts"].dt.tz_localize("UTC").dt.tz_convert("America/New_York").dt.floor("D")
    days = df.groupby(local.dt.tz_convert("UTC")).agg(n=("qty", "size"), q=("qty", "sum"))
    check("tz day starts", ns_values(got.column("timestamp")), [int(t.value) for t in days.index])
    check("tz day counts", got.column("n").to_pylist(), days["n"].tolist())
    check("tz day sums", got.column("q").to_pylist(), days["q"].tolist())
    # LATEST ON: each symbol's newest row, in timestamp order.
    got = db.query("SELECT sym, px, timestamp FROM rt_ts WHERE qty > 20 LATEST ON timestamp PARTITION BY sym").to_arrow()
    newest = df[df["qty"] > 20].sort_values("ts", kind="stable").groupby(df["sym"].astype(str)).tail(1).sort_values("ts")
    check("latest keys", comparable(got.column("sym")), newest["sym"].astype(str).tolist())
    check("latest px", got.column("px").to_pylist(), newest["px"].tolist())
    check("latest ts", ns_values(got.column("timestamp")), [int(t.value) for t in newest["ts"]])
    # ASOF JOIN against pandas' merge_asof (backward, by symbol), and LT
    # JOIN against the same without exact matches.
    rng = np.random.default_rng(11)
    quotes = pd.DataFrame({
        "sym": pd.Categorical(rng.choice(["s0", "s1", "s2", "s3"], 3000)),
        "bid": rng.normal(100, 5, 3000),
        "ts": pd.Timestamp("2024-11-02T11:00:00") + pd.to_timedelta(
            np.sort(rng.integers(0, 50 * 3600 * 10**6, 3000)), unit="us"),
    })
    db.dataframe(quotes, table_name="rt_quotes", at="ts")
    trades = df.sort_values("ts", kind="stable")[["sym", "px", "ts"]].copy()
    trades["sym"] = trades["sym"].astype(str)
    q = quotes.copy()
    q["sym"] = q["sym"].astype(str)
    for join, exact in [("ASOF", True), ("LT", False)]:
        got = db.query(f"SELECT t.timestamp, t.sym, t.px, q.bid FROM rt_ts t {join} JOIN rt_quotes q ON (sym)").to_arrow()
        want = pd.merge_asof(trades, q, on="ts", by="sym", direction="backward", allow_exact_matches=exact)
        check(f"{join} rows", got.num_rows, len(want))
        check(f"{join} times", ns_values(got.column("timestamp")), [int(t.value) for t in want["ts"]])
        check(f"{join} keys", comparable(got.column("sym")), want["sym"].tolist())
        close_lists(f"{join} bids", got.column("bid").to_pylist(), none_if_nan(want["bid"].tolist()))
    # DROP PARTITION by name and by condition (on each partition's start),
    # then a TTL: the partitions ending more than a day before the newest
    # quote go as the statement runs.
    def count_by_day(name):
        got = db.query(f"SELECT timestamp_floor('d', timestamp) d, count() n FROM {name} GROUP BY d ORDER BY d").to_arrow()
        return dict(zip(ns_values(got.column("d")), got.column("n").to_pylist()))

    per_day = df.groupby(df["ts"].dt.floor("D")).size()
    want = {int(d.value): int(n) for d, n in per_day.items() if d != pd.Timestamp("2024-11-03")}
    done = db.execute("ALTER TABLE rt_ts DROP PARTITION LIST '2024-11-03'")
    check("drop partition op", (done.op_type, done.rows_affected), (4, 0))
    check("drop partition list", count_by_day("rt_ts"), want)
    db.execute("ALTER TABLE rt_ts DROP PARTITION WHERE timestamp < '2024-11-03'")
    want = {d: n for d, n in want.items() if d >= pd.Timestamp("2024-11-03").value}
    check("drop partition where", count_by_day("rt_ts"), want)
    db.execute("ALTER TABLE rt_quotes SET TTL 1 DAY")
    newest = quotes["ts"].max()
    keep = quotes[quotes["ts"] >= (newest - pd.Timedelta(days=1)).floor("D")]
    per_day = keep.groupby(keep["ts"].dt.floor("D")).size()
    check("ttl", count_by_day("rt_quotes"), {int(d.value): int(n) for d, n in per_day.items()})


def case_binds(db):
    sent, _ = table_types()
    db.dataframe(sent, table_name="rt_binds", at="ts",
                 schema_overrides={"ip": "ipv4", "ch": "char", "geo": ("geohash", 20)})
    utc = dt.timezone.utc
    echoes = [
        (None, "varchar", None),
        (True, "boolean", True),
        (-(2**63) + 1, "long", -(2**63) + 1),
        (2.5e-300, "double", 2.5e-300),
        ("ünï 🦞", "varchar", "ünï 🦞"),
        (dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=utc), "timestamp",
         dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=utc)),
        (questdb.TimestampMicros(1_700_000_000_000_001), "timestamp",
         dt.datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=utc)),
        (questdb.TimestampNanos(1_700_000_000_000_000_001), "timestamp_nanos", 1_700_000_000_000_000_001),
        (dt.date(1969, 12, 31), "date", dt.datetime(1969, 12, 31, tzinfo=utc)),
        (Decimal("-1234567.891"), None, Decimal("-1234567.891")),
        (uuid.UUID("12345678-9abc-def0-1234-56789abcdef0"), "uuid",
         uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")),
    ]
    for value, qtype, want in echoes:
        got = db.query("SELECT $1 AS x", binds=[value]).to_arrow()
        field = got.schema.field("x")
        if qtype is not None:
            check(f"bind {value!r} type", column_type(field), qtype)
        else:
            check(f"bind {value!r} type", column_type(field).startswith("decimal"), True)
        col = got.column("x")
        if column_type(field) == "timestamp_nanos":
            g = ns_values(col)[0]
        elif column_type(field) == "uuid":
            raw = comparable(col)[0]
            g = uuid.UUID(bytes=raw) if isinstance(raw, bytes) else raw
        else:
            g = col.to_pylist()[0]
        check(f"bind {value!r} value", g, want)
    # Binds in filters, against stored columns of other widths and types.
    got = db.query("SELECT i8 FROM rt_binds WHERE i16 = $1", binds=[-1000]).to_arrow()
    check("filter int", got.column("i8").to_pylist(), [None])
    got = db.query("SELECT s FROM rt_binds WHERE sym = $1 AND flag = $2", binds=["alpha", True]).to_arrow()
    check("filter symbol+bool", got.column("s").to_pylist(), ["s0", ""])
    got = db.query("SELECT i64 FROM rt_binds WHERE t_us >= $1 AND t_us < $2",
                   binds=[questdb.TimestampMicros(1_000), dt.datetime(2030, 1, 1, tzinfo=utc)]).to_arrow()
    check("filter timestamps", got.column("i64").to_pylist(), [2**40, 0])
    got = db.query("SELECT i32 FROM rt_binds WHERE u = $1",
                   binds=[uuid.UUID("ffffffff-0000-0000-0000-000000000001")]).to_arrow()
    check("filter uuid", got.column("i32").to_pylist(), [-5])
    got = db.query("SELECT i16 FROM rt_binds WHERE dec = $1", binds=[Decimal("-0.001")]).to_arrow()
    check("filter decimal", got.column("i16").to_pylist(), [-1000])
    got = db.query("SELECT count(*) AS n FROM rt_binds WHERE d32 = $1", binds=[dt.date(2024, 2, 29)]).to_arrow()
    check("filter date", got.column("n").to_pylist(), [1])


WRITES_DDL = """CREATE TABLE rt_w (
    b BOOLEAN, by BYTE, sh SHORT, c CHAR, i INT, l LONG, f FLOAT, d DOUBLE,
    dt DATE, sym SYMBOL CAPACITY 64 NOCACHE, v VARCHAR, s STRING, u UUID, ip IPV4,
    l256 LONG256, g GEOHASH(5c), gb GEOHASH(7b), dec DECIMAL(10, 2), big DECIMAL(60, 4),
    arr DOUBLE[], arr2 DOUBLE[][], la LONG[], tsn TIMESTAMP_NS, ts TIMESTAMP
) TIMESTAMP(ts) PARTITION BY DAY WAL"""

WRITES_ROW = ("INSERT INTO rt_w VALUES (true, -5, 300, 'é', -7, 9000000000, 1.5, -2.25, "
              "'2024-02-29T12:00:00.123Z', 'σύμβολο', 'héllo 🦞', 'plain', "
              "'123e4567-e89b-12d3-a456-426614174000', '192.168.1.20', '0x1ff', 'u33dc', "
              "'u33', 12.34, '-123456789012345678901234567890.1234', make_array(1.0, -2.5), "
              "make_array(make_array(1.0, 2.0), make_array(3.0, 4.0)), make_array(7, -8), "
              "1700000000123456789, '2024-03-01T00:00:00.000001Z')")


def case_writes(db):
    def expect_done(sql, op_type, rows, **kw):
        done = db.execute(sql, **kw)
        check(f"EXEC_DONE of {sql[:50]!r}", (done.op_type, done.rows_affected), (op_type, rows))

    def expect_error(sql, fragment, **kw):
        try:
            db.execute(sql, **kw)
        except questdb.QuestDBError as e:
            if fragment.lower() not in str(e).lower():
                failures.append(f"{sql[:60]!r}: message {str(e)!r} lacks {fragment!r}")
            return
        failures.append(f"{sql[:60]!r}: no error")

    expect_done(WRITES_DDL, 9, 0)
    expect_error(WRITES_DDL, "already exists")
    expect_done("CREATE TABLE IF NOT EXISTS rt_w (x INT)", 9, 0)
    expect_done(WRITES_ROW, 2, 1)
    got = db.query("SELECT * FROM rt_w").to_arrow()
    want_types = {"b": "boolean", "by": "byte", "sh": "short", "c": "char", "i": "int",
                  "l": "long", "f": "float", "d": "double", "dt": "date", "sym": "symbol",
                  "v": "varchar", "s": "varchar", "u": "uuid", "ip": "ipv4", "l256": "long256",
                  "g": "geohash", "gb": "geohash", "dec": "decimal64", "big": "decimal256",
                  "arr": "double_array", "arr2": "double_array", "la": "long_array",
                  "tsn": "timestamp_nanos", "ts": "timestamp"}
    check("CREATE TABLE column types", {f.name: column_type(f) for f in got.schema}, want_types)
    row = {n: comparable(got.column(n))[0] for n in got.column_names}
    # Each value as the literal above means it, computed here.
    b32 = "0123456789bcdefghjkmnpqrstuvwxyz"
    geo = 0
    for ch in "u33dc":
        geo = geo * 32 + b32.index(ch)
    want = {
        "b": True, "by": -5, "sh": 300, "c": ord("é"), "i": -7, "l": 9_000_000_000,
        "f": 1.5, "d": -2.25, "sym": "σύμβολο", "v": "héllo 🦞", "s": "plain",
        "u": uuid.UUID("123e4567-e89b-12d3-a456-426614174000"),
        "ip": (192 << 24) | (168 << 16) | (1 << 8) | 20,
        "l256": (0x1FF).to_bytes(32, "little"), "g": geo, "gb": (b32.index("u") << 2) | (b32.index("3") >> 3),
        "dec": Decimal("12.34"), "big": Decimal("-123456789012345678901234567890.1234"),
        "arr": [1.0, -2.5], "arr2": [[1.0, 2.0], [3.0, 4.0]], "la": [7, -8],
    }
    for name, value in want.items():
        check(f"inserted {name}", row[name], value)
    check("inserted dt", ns_values(got.column("dt")), [1_709_208_000_123 * 10**6])
    check("inserted tsn", ns_values(got.column("tsn")), [1_700_000_000_123_456_789])
    check("inserted ts", ns_values(got.column("ts")), [1_709_251_200_000_001 * 1000])

    # Many rows at once, NULLs, and binds of several types.
    expect_done("INSERT INTO rt_w (ts, i, sym) VALUES ('2024-03-02', 1, 'a'), "
                "('2024-03-03', NULL, NULL), ('2024-03-04', 3, 'a')", 2, 3)
    expect_done("INSERT INTO rt_w (ts, l, v, d, u) VALUES ($1, $2, $3, $4, $5)", 2, 1,
                binds=[dt.datetime(2024, 3, 5, tzinfo=dt.timezone.utc), 2**62, "bound ✓", 0.125,
                       uuid.UUID("00000000-0000-0000-0000-0000000000ff")])
    got = db.query("SELECT l, v, d, u FROM rt_w WHERE ts = '2024-03-05T00:00:00Z'").to_arrow()
    check("bound row", [comparable(got.column(n))[0] for n in got.column_names],
          [2**62, "bound ✓", 0.125, uuid.UUID("00000000-0000-0000-0000-0000000000ff")])
    # INSERT ... SELECT, from the table into itself.
    expect_done("INSERT INTO rt_w (ts, i, sym) SELECT ts + INTERVAL '10' DAY, i * 100, sym "
                "FROM rt_w WHERE i IS NOT NULL", 10, 3)
    got = db.query("SELECT i, sym FROM rt_w WHERE ts >= '2024-03-10' ORDER BY ts").to_arrow()
    check("INSERT SELECT i", got.column("i").to_pylist(), [-700, 100, 300])
    check("INSERT SELECT sym", comparable(got.column("sym")), ["σύμβολο", "a", "a"])

    # Failed statements change nothing.
    before = db.query("SELECT count(*) AS n FROM rt_w").to_arrow().column("n").to_pylist()
    expect_error("INSERT INTO rt_w (ts, by) VALUES ('2024-04-01', 1), ('2024-04-02', 300)", "by")
    expect_error("INSERT INTO rt_w (ts, ip) VALUES ('2024-04-01', 'not an address')", "ipv4")
    expect_error("INSERT INTO rt_w (ts) VALUES (NULL)", "designated timestamp")
    expect_error("INSERT INTO rt_w (i) VALUES (1)", "designated timestamp")
    expect_error("INSERT INTO rt_w (ts, nope) VALUES ('2024-04-01', 1)", "nope")
    expect_error("INSERT INTO no_such (x) VALUES (1)", "no_such")
    expect_error("ALTER TABLE rt_w ALTER COLUMN sym ADD INDEX", "ALTER COLUMN")
    expect_error("ALTER TABLE rt_w DROP COLUMN ts", "designated timestamp")
    expect_error("DROP TABLE no_such", "no_such")
    expect_error("CREATE TABLE rt_bad (x WIDGET)", "WIDGET")
    after = db.query("SELECT count(*) AS n FROM rt_w").to_arrow().column("n").to_pylist()
    check("rows after failed statements", after, before)

    # Ingest into a SQL-made table; SQL into an ingested table.
    db.dataframe(pd.DataFrame({"i": [11], "sym": ["from ingest"],
                               "ts": pd.to_datetime(["2024-05-01"], utc=True)}),
                 table_name="rt_w", at="ts")
    got = db.query("SELECT i, sym FROM rt_w WHERE ts = '2024-05-01T00:00:00Z'").to_arrow()
    check("ingest into SQL table", [got.column("i").to_pylist(), comparable(got.column("sym"))],
          [[11], ["from ingest"]])
    db.dataframe(pd.DataFrame({"v": [1.5], "ts": pd.to_datetime(["2024-05-01"], utc=True)}),
                 table_name="rt_ingested", at="ts")
    expect_done("INSERT INTO rt_ingested VALUES (2.5, '2024-05-02')", 2, 1)
    got = db.query("SELECT v FROM rt_ingested").to_arrow()
    check("SQL into ingested table", got.column("v").to_pylist(), [1.5, 2.5])

    # DROP TABLE: gone at once; the name takes a new table, by SQL or ingest.
    expect_done("DROP TABLE rt_ingested", 7, 0)
    expect_error("SELECT * FROM rt_ingested", "rt_ingested")
    expect_done("DROP TABLE IF EXISTS rt_ingested", 7, 0)
    db.dataframe(pd.DataFrame({"w": [7], "ts": pd.to_datetime(["2024-06-01"], utc=True)}),
                 table_name="rt_ingested", at="ts")
    got = db.query("SELECT * FROM rt_ingested").to_arrow()
    check("a new table under a dropped name", got.column_names, ["w", "timestamp"])
    check("its rows", got.column("w").to_pylist(), [7])
    # TRUNCATE TABLE: empty, same columns, takes rows again.
    expect_done("TRUNCATE TABLE rt_ingested", 3, 0)
    got = db.query("SELECT * FROM rt_ingested").to_arrow()
    check("truncated", (got.column_names, got.num_rows), (["w", "timestamp"], 0))
    expect_done("INSERT INTO rt_ingested VALUES (8, '2024-06-02')", 2, 1)
    got = db.query("SELECT w FROM rt_ingested").to_arrow()
    check("rows after truncate", got.column("w").to_pylist(), [8])
    # RENAME TABLE: the rows go with the table; ingest by the new name.
    expect_done("RENAME TABLE rt_ingested TO rt_renamed", 12, 0)
    expect_error("SELECT * FROM rt_ingested", "rt_ingested")
    db.dataframe(pd.DataFrame({"w": [9], "ts": pd.to_datetime(["2024-06-03"], utc=True)}),
                 table_name="rt_renamed", at="ts")
    got = db.query("SELECT w FROM rt_renamed").to_arrow()
    check("rows after rename", got.column("w").to_pylist(), [8, 9])
    # RENAME and DROP COLUMN: values stay with their column, ingest uses
    # the new names (a renamed SYMBOL keeps its dictionary), and a dropped
    # column's name sent again makes a new, empty column.
    db.dataframe(pd.DataFrame({"s": pd.Categorical(["x", "y"]), "n": [1, 2],
                               "ts": pd.to_datetime(["2024-07-01", "2024-07-02"], utc=True)}),
                 table_name="rt_cols", at="ts")
    expect_done("ALTER TABLE rt_cols RENAME COLUMN s TO tag", 4, 0)
    expect_done("ALTER TABLE rt_cols DROP COLUMN n", 4, 0)
    db.dataframe(pd.DataFrame({"tag": pd.Categorical(["y", "z"]), "n": ["three", "four"],
                               "ts": pd.to_datetime(["2024-07-03", "2024-07-04"], utc=True)}),
                 table_name="rt_cols", at="ts")
    got = db.query("SELECT * FROM rt_cols").to_arrow()
    check("columns after changes", got.column_names, ["tag", "timestamp", "n"])
    check("renamed SYMBOL", comparable(got.column("tag")), ["x", "y", "y", "z"])
    check("column of a dropped name", got.column("n").to_pylist(), [None, None, "three", "four"])


def case_errors(db):
    def expect_error(sql, fragment):
        try:
            db.query(sql).to_arrow()
        except questdb.QuestDBError as e:
            if fragment.lower() not in str(e).lower():
                failures.append(f"{sql!r}: message {str(e)!r} lacks {fragment!r}")
            return
        failures.append(f"{sql!r}: no error")

    db.dataframe(pd.DataFrame({"v": [1, 2, 3], "ts": pd.to_datetime([1, 2, 3], unit="s")}),
                 table_name="rt_err", at="ts")
    expect_error("SELEC v FROM rt_err", "sql")
    expect_error("SELECT v FROM no_such_table", "no_such_table")
    expect_error("SELECT nope FROM rt_err", "nope")
    # A query past the client's timeout.
    try:
        db.query("SELECT count(*) FROM long_sequence(100000) a CROSS JOIN long_sequence(100000) b",
                 timeout=dt.timedelta(milliseconds=200)).to_arrow()
        failures.append("timeout: no error")
    except questdb.QuestDBError as e:
        if "timed out" not in str(e):
            failures.append(f"timeout: message {str(e)!r}")
    # cancel() mid-stream: a result far larger than what is read.
    result = db.query("SELECT x FROM long_sequence(1000000000)")
    batches = result.iter_arrow()
    first = next(batches)
    check("first batch before cancel", first.column(0)[0].as_py(), 1)
    result.cancel()
    result.close()
    # The connection (one pooled reader) still answers.
    with db.reader() as reader:
        got = reader.query("SELECT v FROM rt_err").to_arrow()
        check("after errors", got.column("v").to_pylist(), [1, 2, 3])


with questdb.connect(conf) as db:
    {"types": case_types, "large": case_large, "sql": case_sql, "binds": case_binds,
     "writes": case_writes, "errors": case_errors, "timeseries": case_timeseries}[case](db)

if failures:
    for f in failures:
        print("MISMATCH", f[:2000])
    sys.exit(1)
print("ok", case)
