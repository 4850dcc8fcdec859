#!/usr/bin/env python3
"""Line protocol peers writing to Quiver over HTTP.

usage: ilp.py PORT CASE

  dataframe   the official client's Sender.from_conf("http::...") with a
              pandas dataframe() (int64, float64 with NaN, bool, object
              strings with None, Categorical symbols, datetime64[ns] with
              NaT), designated at="ts"; protocol version negotiated.
  rows        the same sender's row() with every ILP type it offers.
  influx_v1   the `influxdb` package (InfluxDB 1.x API): ping, CREATE
              DATABASE, /write?db= with millisecond precision.
  influx_v2   the `influxdb-client` package (InfluxDB 2.x API): ping,
              /api/v2/write?org=&bucket=, nanoseconds, gzip on.
  reject      the official client's http:: sender flushing a row that
              conflicts with the column's type: prints the error.

The Rust test (python_ilp.rs) holds the same constants.
"""
import sys
from decimal import Decimal

import numpy as np
import pandas as pd
import questdb as qi

port = int(sys.argv[1])
case = sys.argv[2]
BASE_NS = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
BASE_MS = BASE_NS // 1_000_000
ROWS = 10_000


def frame():
    i = np.arange(ROWS, dtype=np.int64)
    f = i.astype(np.float64) * 0.25
    f[3] = np.nan
    s = np.array([f"row-{k}" if k % 5 else None for k in range(ROWS)], dtype=object)
    t = pd.to_datetime(i * 1_000 + BASE_NS, unit="ns").values.copy()
    t[7] = np.datetime64("NaT")
    return pd.DataFrame({
        "i": i,
        "f": f,
        "b": i % 2 == 0,
        "s": s,
        "sym": pd.Categorical.from_codes(i % 3, ["x", "y", "z"]),
        "t": t,
        "ts": pd.to_datetime(i * 1_000_000 + BASE_NS, unit="ns"),
    })


if case == "dataframe":
    with qi.Sender.from_conf(f"http::addr=127.0.0.1:{port};") as sender:
        print("protocol version", sender.protocol_version)
        sender.dataframe(frame(), table_name="py_df", at="ts")
elif case == "rows":
    with qi.Sender.from_conf(f"http::addr=127.0.0.1:{port};") as sender:
        sender.row(
            "py_rows",
            symbols={"sym": "a b,c"},
            columns={
                "l": -5,
                "d": 2.5,
                "b": True,
                "s": "ünï \"q\"",
                "tu": qi.TimestampMicros(1_700_000_000_000_001),
                "tn": qi.TimestampNanos(1_700_000_000_000_000_002),
                "arr": np.array([[1.0, 2.0], [3.0, 4.0]]),
                "dec": Decimal("12.345"),
            },
            at=qi.TimestampNanos(BASE_NS))
        sender.row("py_rows", symbols={"sym": "only"}, at=qi.TimestampNanos(BASE_NS + 1000))
elif case == "influx_v1":
    from influxdb import InfluxDBClient
    client = InfluxDBClient(host="127.0.0.1", port=port, database="mydb")
    print("ping", client.ping())
    client.create_database("mydb")  # as Telegraf does before writing
    points = [
        {"measurement": "v1_weather", "tags": {"city": "Oslo"},
         "fields": {"temp": 3.5, "count": 7, "ok": True, "note": "cold"},
         "time": BASE_MS},
        {"measurement": "v1_weather", "tags": {"city": "Rome"},
         "fields": {"temp": 18.25, "count": -2, "ok": False, "note": "warm, \"sunny\""},
         "time": BASE_MS + 1},
    ]
    assert client.write_points(points, time_precision="ms")
elif case == "influx_v2":
    from influxdb_client import InfluxDBClient, Point, WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS
    with InfluxDBClient(url=f"http://127.0.0.1:{port}", token="unused", org="o",
                        enable_gzip=True) as client:
        print("ping", client.ping())
        write = client.write_api(write_options=SYNCHRONOUS)
        write.write(bucket="b", write_precision=WritePrecision.NS, record=[
            Point("v2_weather").tag("city", "Oslo").field("temp", 3.5)
            .field("count", 7).field("ok", True).field("note", "cold").time(BASE_NS),
            Point("v2_weather").tag("city", "Rome").field("temp", 18.25)
            .field("count", -2).field("ok", False).field("note", "warm").time(BASE_NS + 5),
        ])
elif case == "reject":
    with qi.Sender.from_conf(f"http::addr=127.0.0.1:{port};") as sender:
        sender.row("py_reject", columns={"v": 1}, at=qi.TimestampNanos(BASE_NS))
        sender.flush()
        sender.row("py_reject", columns={"v": 2}, at=qi.TimestampNanos(BASE_NS + 1))
        sender.row("py_reject", columns={"v": "two"}, at=qi.TimestampNanos(BASE_NS + 2))
        try:
            sender.flush()
            print("no error")
        except Exception as e:  # the client's error type for a rejected flush
            print("error:", e)
else:
    raise SystemExit(f"unknown case {case}")
print("done", case)
