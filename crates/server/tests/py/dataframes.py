#!/usr/bin/env python3
"""DataFrame ingest (db.dataframe()) from pandas, pyarrow and polars.

usage: dataframes.py PORT CASE [extra conf keys...]

Each CASE loads one frame into its own table (named after the case):

  numpy      pandas with NumPy dtypes: int64, int32, float64 (NaN), float32,
             bool, str and object dtype strings (None), datetime64[ns] (NaT), datetime64[us],
             designated at='ts' (datetime64[ns]).
  arrow      pandas, every column an ArrowDtype: int64/float64/bool/
             timestamp (nulls), string[pyarrow] (NA).
  masked     pandas nullable dtypes mixed with NumPy: Int64 (NA),
             string[pyarrow] (NA), datetime64[ns] (NaT).
  category   Categorical -> SYMBOL, with NaN and non-ASCII categories.
  unicode    non-ASCII strings (object and string[pyarrow]), a non-ASCII
             column name.
  pyarrow    a pyarrow Table with int8/16/32/64, float32/64, bool, string,
             large_string, dictionary (SYMBOL), timestamp ms (DATE), us/UTC,
             date32 (DATE), decimal128, list<double> (1-D, 2-D), binary,
             uuid, long256 / ipv4 / char / geohash via schema_overrides or
             field metadata.
  polars     a polars DataFrame: Int64/Float64/String/Boolean with nulls,
             Categorical, Datetime(us) designated, Datetime(ns), Date,
             List(Float64).
  large      200,000 rows (split by the client into many frames).
  server_ts  at=ServerTimestamp.

The Rust test (python_dataframe.rs) holds the same constants and derives
the expected stored values on its own.
"""
import datetime as dt
import sys
import uuid
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import questdb

port = int(sys.argv[1])
case = sys.argv[2]
extra = "".join(f"{kv};" for kv in sys.argv[3:])
conf = f"ws::addr=127.0.0.1:{port};{extra}"

BASE_NS = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
LARGE_ROWS = 200_000


def ns_index(n, step_ns=1_000_000_000):
    return pd.to_datetime(np.arange(n, dtype=np.int64) * step_ns + BASE_NS, unit="ns")


def frame_numpy():
    return pd.DataFrame({
        "i64": np.array([1, -2, 2**62, -(2**63) + 1], dtype=np.int64),
        "i32": np.array([7, -7, 2**31 - 1, -(2**31) + 1], dtype=np.int32),
        "f64": np.array([1.5, np.nan, -2.25, 1e300], dtype=np.float64),
        "f32": np.array([0.5, -1.25, 3.0, 1024.0], dtype=np.float32),
        "flag": np.array([True, False, True, False]),
        "s": np.array(["a", None, "ünï", ""], dtype=object),  # pandas 3 infers `str`
        "s_obj": pd.Series(["o1", "ö2", None, "o4"], dtype=object),
        "t_ns": np.array([1_704_067_200_000_000_001, "NaT", -1_000, 1_719_750_896_789_000_000],
                         dtype="datetime64[ns]"),
        "t_us": np.array([1_704_067_200_000_001, 1_000_000_000_000_000, 0, 2_147_483_648_000_000],
                         dtype="datetime64[us]"),
        "ts": ns_index(4),
    })


def frame_arrow():
    """Every column an ArrowDtype: the Arrow C stream route."""
    return pd.DataFrame({
        "a_i64": pd.array([10, None, -30, 2**53], dtype=pd.ArrowDtype(pa.int64())),
        "a_f64": pd.array([0.25, None, -8.0, 1e-300], dtype=pd.ArrowDtype(pa.float64())),
        "a_bool": pd.array([True, False, False, True], dtype=pd.ArrowDtype(pa.bool_())),
        "a_str": pd.array(["x", None, "ÿ€", "last"], dtype="string[pyarrow]"),
        "a_ts": pd.array([1_709_251_200_000_001, None, 946_684_800_000_000, 1_709_269_200_000_000],
                         dtype=pd.ArrowDtype(pa.timestamp("us", tz="UTC"))),
        "ts": pd.array(ns_index(4).asi8, dtype=pd.ArrowDtype(pa.timestamp("ns"))),
    })


def frame_masked():
    """pandas nullable extension dtypes next to NumPy ones: masked Int64
    with NA, string[pyarrow] with NA, datetime64[ns] with NaT."""
    return pd.DataFrame({
        "m_i64": pd.array([None, 5, 6, -(2**63) + 1], dtype="Int64"),
        "m_str": pd.array(["p", "q", None, "ü"], dtype="string[pyarrow]"),
        "m_ts": pd.to_datetime(np.array([1_000, "NaT", 2_000, 1_709_251_200_123_456_789],
                                        dtype="datetime64[ns]")),
        "ts": ns_index(4),
    })


def frame_category():
    return pd.DataFrame({
        "cat": pd.Categorical(["ETH", "BTC", None, "ETH", "ß-Ω", np.nan]),
        "cat2": pd.Categorical(["ü", "ü", "v", "w", "v", "ü"]),
        "n": np.arange(6, dtype=np.int64),
        "ts": ns_index(6),
    })


def frame_unicode():
    return pd.DataFrame({
        "名前": np.array(["東京", "Zürich", None, "🦞 lobster", "Ελληνικά"], dtype=object),
        "s_pa": pd.array(["ąčę", "", None, "𝔘𝔫𝔦", "mixed ascii ü"], dtype="string[pyarrow]"),
        "ts": ns_index(5),
    })


def table_pyarrow():
    ts = pa.array(list(range(BASE_NS, BASE_NS + 4 * 1_000_000_000, 1_000_000_000)), pa.timestamp("ns"))
    l256_md = {b"questdb.column_type": b"long256"}
    fields = [
        pa.field("i8", pa.int8()),
        pa.field("i16", pa.int16()),
        pa.field("i32", pa.int32()),
        pa.field("i64", pa.int64()),
        pa.field("f32", pa.float32()),
        pa.field("f64", pa.float64()),
        pa.field("flag", pa.bool_()),
        pa.field("s", pa.string()),
        pa.field("ls", pa.large_string()),
        pa.field("sym", pa.dictionary(pa.int32(), pa.string())),
        pa.field("d_ms", pa.timestamp("ms")),
        pa.field("t_us", pa.timestamp("us", tz="UTC")),
        pa.field("d32", pa.date32()),
        pa.field("dec", pa.decimal128(10, 3)),
        pa.field("arr", pa.list_(pa.float64())),
        pa.field("arr2", pa.list_(pa.list_(pa.float64()))),
        pa.field("bin", pa.binary()),
        pa.field("u", pa.uuid()),
        pa.field("l256", pa.binary(32), metadata=l256_md),
        pa.field("ip", pa.uint32()),
        pa.field("ch", pa.uint16()),
        pa.field("geo", pa.int32()),
        pa.field("ts", pa.timestamp("ns")),
    ]
    l256_a = (2**200 + 5).to_bytes(32, "little")
    l256_b = bytes(range(32))
    data = [
        pa.array([1, None, -128, 127], pa.int8()),
        pa.array([1000, -1000, None, 32767], pa.int16()),
        pa.array([None, 2**31 - 1, -5, 0], pa.int32()),
        pa.array([2**40, None, -(2**63) + 1, 0], pa.int64()),
        pa.array([1.5, None, -0.25, 3e38], pa.float32()),
        pa.array([None, 2.5, -1e-10, 6.02e23], pa.float64()),
        pa.array([True, True, False, True], pa.bool_()),
        pa.array(["s0", None, "sß", ""], pa.string()),
        pa.array(["large", "ünï", None, "z"], pa.large_string()),
        pa.array(["alpha", "βeta", None, "alpha"], pa.string()).dictionary_encode(),
        pa.array([1_700_000_000_123, None, -1, 0], pa.timestamp("ms")),
        pa.array([1_700_000_000_000_001, 0, None, 1_000], pa.timestamp("us", tz="UTC")),
        pa.array([dt.date(2024, 2, 29), None, dt.date(1970, 1, 1), dt.date(1969, 12, 31)], pa.date32()),
        pa.array([Decimal("1234567.891"), Decimal("-0.001"), None, Decimal("0")], pa.decimal128(10, 3)),
        pa.array([[1.0, 2.0], None, [], [-0.5]], pa.list_(pa.float64())),
        pa.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0]], None, [[6.0, 7.0, 8.0]]], pa.list_(pa.list_(pa.float64()))),
        pa.array([b"\x00\xff", b"", None, b"bytes"], pa.binary()),
        pa.array([uuid.UUID("12345678-9abc-def0-1234-56789abcdef0").bytes, None,
                  uuid.UUID("ffffffff-0000-0000-0000-000000000001").bytes,
                  uuid.UUID("00000000-0000-0000-0000-000000000000").bytes], pa.uuid()),
        pa.array([l256_a, None, l256_b, bytes(32)], pa.binary(32)),
        pa.array([0xC0A80114, None, 0x0A000001, 0xFFFFFFFF], pa.uint32()),
        pa.array([ord("A"), ord("é"), 0x20AC, ord("z")], pa.uint16()),
        pa.array([0b1101000011000110110, None, 0, 1], pa.int32()),
        ts,
    ]
    return pa.Table.from_arrays(data, schema=pa.schema(fields))


def frame_polars():
    import polars as pl
    return pl.DataFrame({
        "i": pl.Series([1, None, -3, 4], dtype=pl.Int64),
        "f": pl.Series([0.5, 1.5, None, -2.0], dtype=pl.Float64),
        "s": pl.Series(["pl", None, "ünï", "🦞"], dtype=pl.String),
        "b": pl.Series([True, False, True, False], dtype=pl.Boolean),
        "c": pl.Series(["x", "y", None, "x"], dtype=pl.Categorical),
        "t_ns": pl.Series([1_700_000_000_000_000_001, None, 5, 0], dtype=pl.Datetime("ns")),
        "d": pl.Series([dt.date(2024, 1, 1), None, dt.date(2000, 2, 29), dt.date(1970, 1, 2)], dtype=pl.Date),
        "arr": pl.Series([[1.0], [2.0, 3.0], None, []], dtype=pl.List(pl.Float64)),
        "ts": pl.Series(list(range(BASE_NS // 1000, BASE_NS // 1000 + 4_000_000, 1_000_000)), dtype=pl.Datetime("us")),
    })


def frame_large():
    i = np.arange(LARGE_ROWS, dtype=np.int64)
    return pd.DataFrame({
        "i": i,
        "f": i.astype(np.float64) * 0.5,
        "sym": pd.Categorical.from_codes(i % 7, [f"s{k}" for k in range(7)]),
        "s": np.array([f"row-{k}" for k in range(LARGE_ROWS)], dtype=object),
        "ts": pd.to_datetime(i * 1_000 + BASE_NS, unit="ns"),
    })


with questdb.connect(conf) as db:
    if case == "numpy":
        df = frame_numpy()
        print(df.dtypes.to_dict())
        db.dataframe(df, table_name="df_numpy", at="ts")
    elif case == "arrow":
        df = frame_arrow()
        print(df.dtypes.to_dict())
        db.dataframe(df, table_name="df_arrow", at="ts")
    elif case == "masked":
        df = frame_masked()
        print(df.dtypes.to_dict())
        db.dataframe(df, table_name="df_masked", at="ts")
    elif case == "category":
        db.dataframe(frame_category(), table_name="df_category", at="ts")
    elif case == "unicode":
        db.dataframe(frame_unicode(), table_name="df_unicode", at="ts")
    elif case == "pyarrow":
        db.dataframe(
            table_pyarrow(), table_name="df_pyarrow", at="ts",
            schema_overrides={"ip": "ipv4", "ch": "char", "geo": ("geohash", 20)})
    elif case == "polars":
        db.dataframe(frame_polars(), table_name="df_polars", at="ts")
    elif case == "large":
        db.dataframe(frame_large(), table_name="df_large", at="ts")
    elif case == "server_ts":
        df = pd.DataFrame({"v": np.array([1, 2, 3], dtype=np.int64),
                           "s": np.array(["a", "b", "c"], dtype=object)})
        db.dataframe(df, table_name="df_server_ts", at=questdb.ServerTimestamp)
    else:
        raise SystemExit(f"unknown case {case}")
print("done", case)
