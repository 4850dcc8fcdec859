#!/usr/bin/env python3
"""Row API (db.sender().row()) with every column type the client offers.

usage: rows_all_types.py PORT main|sentinels [extra conf keys...]

main (auto_flush=off, explicit flushes):
  frame 1, one flush, three tables:
    all_types   3 rows, every row-API column type, NULLs (None) for each,
                non-ASCII text and symbols, a NULL symbol; designated
                timestamp as TimestampNanos.
    micros_at   2 rows, designated timestamp given as tz-aware datetimes,
                a non-ASCII column name.
    server_ts   2 rows with at=ServerTimestamp (server assigns the time).
  frame 2:
    all_types   1 more row with a column the table does not have yet
                (`extra`), a decimal of another scale, symbols seen in
                frame 1 and a new one.
sentinels:
  sentinels_dense / sentinels_bitmap: QuestDB's reserved NULL sentinels
  (LONG i64::MIN, DOUBLE NaN, IPV4 0.0.0.0, DATE INT64_MIN, UUID
  80000000-0000-0000-8000-000000000000, LONG256 with all limbs
  0x8000000000000000) sent as values, next to ordinary values; the second
  table also has a row with None in every column but `l`, so the client
  sends its nullable columns with a null bitmap.

The Rust test (python_rows.rs) holds the same constants and derives the
expected stored values on its own; this script only prints progress.
"""
import datetime as dt
import ipaddress
import sys
import uuid
from decimal import Decimal

import numpy as np
import questdb
from questdb import (Char, DateMillis, Geohash, Long256, ServerTimestamp,
                     TimestampMicros, TimestampNanos)

port = int(sys.argv[1])
scenario = sys.argv[2]
extra = "".join(f"{kv};" for kv in sys.argv[3:])
conf = f"ws::addr=127.0.0.1:{port};auto_flush=off;{extra}"
UTC = dt.timezone.utc

L256_MIXED = 0x0102030405060708_1112131415161718_2122232425262728_3132333435363738


def sentinel_cells(i):
    """Row i of the sentinel tables: row 0 holds QuestDB's reserved NULL
    sentinels as values, row 1 ordinary values, row 2 (only in the table
    that has it) LONG 2 and None for every other column (a row of nothing
    but None is dropped by the client)."""
    if i == 0:
        return {
            "l": -(2**63),
            "d": float("nan"),
            "ip": ipaddress.IPv4Address("0.0.0.0"),
            "dt": DateMillis(-(2**63)),
            "u": uuid.UUID("80000000-0000-0000-8000-000000000000"),
            "l256": Long256(sum(0x8000000000000000 << (64 * k) for k in range(4))),
        }
    if i == 1:
        return {
            "l": 1,
            "d": 0.5,
            "ip": ipaddress.IPv4Address("10.0.0.1"),
            "dt": DateMillis(0),
            "u": uuid.UUID("80000000-0000-0000-8000-000000000001"),
            "l256": Long256(0),
        }
    return {"l": 2, "d": None, "ip": None, "dt": None, "u": None, "l256": None}


def sentinels(db):
    with db.sender() as s:
        # No None anywhere: the client writes every column densely.
        for i in range(2):
            s.row("sentinels_dense", columns=sentinel_cells(i),
                  at=TimestampNanos(1_700_000_010_000_000_000 + i))
        # A None row: nullable columns go out in bitmap mode, the
        # sentinels as ordinary non-NULL values.
        for i in range(3):
            s.row("sentinels_bitmap", columns=sentinel_cells(i),
                  at=TimestampNanos(1_700_000_020_000_000_000 + i))
        s.flush(wait=True)
        print("sentinels acked:", s.acked_fsn())


def main(db):
    with db.sender() as s:
        # ---- frame 1: three tables -------------------------------------
        s.row(
            "all_types",
            symbols={"sym": "alpha", "sym_u": "βeta-✓"},
            columns={
                "b": True,
                "l": 42,
                "d": 3.25,
                "s": "hello",
                "ts_us": TimestampMicros(1_700_000_000_123_456),
                "ts_ns": TimestampNanos(1_700_000_000_123_456_789),
                "arr1": np.array([1.0, 2.5, -3.0, float("nan")]),
                "arr2": np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
                "dec": Decimal("123.4500"),
                "u": uuid.UUID("12345678-9abc-def0-1234-56789abcdef0"),
                "ip": ipaddress.IPv4Address("192.168.1.20"),
                "ch": Char("A"),
                "dt": DateMillis(1_700_000_000_123),
                "l256": Long256(L256_MIXED),
                "geo5": Geohash.from_string("u"),
                "geo10": Geohash.from_string("u3"),
                "geo20": Geohash.from_string("u33d"),
                "geo60": Geohash.from_string("u33dc0cpke7v"),
                "bin": b"\x00\x01\xff",
            },
            at=TimestampNanos(1_700_000_000_000_000_001),
        )
        s.row(
            "all_types",
            symbols={"sym": None, "sym_u": "日本"},
            columns={
                "b": False,
                "l": None,
                "d": None,
                "s": None,
                "ts_us": None,
                "ts_ns": None,
                "arr1": None,
                "arr2": None,
                "dec": None,
                "u": None,
                "ip": None,
                "ch": None,
                "dt": None,
                "l256": None,
                "geo5": None,
                "geo10": None,
                "geo20": None,
                "geo60": None,
                "bin": None,
            },
            at=TimestampNanos(1_700_000_001_000_000_000),
        )
        s.row(
            "all_types",
            symbols={"sym": "βeta-✓", "sym_u": "alpha"},
            columns={
                "b": None,
                "l": -9_223_372_036_854_775_807,
                "d": -1.5e300,
                "s": "ünïcødé 日本語 🦞",
                "ts_us": dt.datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
                "ts_ns": TimestampNanos(0),
                "arr1": np.array([], dtype=np.float64),
                # A transposed (non C-contiguous) view: [[0,3],[1,4],[2,5]].
                "arr2": np.arange(6, dtype=np.float64).reshape(2, 3).T,
                "dec": Decimal("-0.5"),
                "u": uuid.UUID("00000000-0000-0000-0000-000000000001"),
                "ip": ipaddress.IPv4Address("255.255.255.255"),
                "ch": Char("€"),
                "dt": DateMillis.from_datetime(dt.datetime(1999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)),
                "l256": Long256(2**256 - 1),
                "geo5": Geohash(0, 5),
                "geo10": Geohash(0b11_1111_1110, 10),
                "geo20": Geohash(1, 20),
                "geo60": Geohash(2**60 - 2, 60),
                "bin": b"",
            },
            at=TimestampNanos(1_700_000_002_500_000_000),
        )
        s.row(
            "micros_at",
            symbols={"k": "alpha"},
            columns={"v": 1, "s": "x", "température": 21.5},
            at=dt.datetime(2024, 1, 1, 12, 0, 0, 250_000, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        )
        s.row(
            "micros_at",
            symbols={"k": "γ"},
            columns={"v": 2, "s": "y", "température": -3.0},
            at=dt.datetime(2024, 1, 2, 0, 0, 0, 1, tzinfo=UTC),
        )
        s.row("server_ts", symbols={"k": "a"}, columns={"v": 10}, at=ServerTimestamp)
        s.row("server_ts", symbols={"k": "b"}, columns={"v": 20}, at=ServerTimestamp)
        print("buffered rows:", len(s))
        fsn = s.flush_and_get_fsn()
        print("frame 1 fsn:", fsn)
        s.wait(timeout_millis=10_000)
        print("frame 1 acked:", s.acked_fsn())
        assert s.acked_fsn() == fsn, (s.acked_fsn(), fsn)

        # ---- frame 2: schema evolution + sentinels ----------------------
        s.row(
            "all_types",
            symbols={"sym": "alpha", "sym_u": "new ∑"},
            columns={"l": 7, "extra": "added later", "dec": Decimal("2.5")},
            at=TimestampNanos(1_700_000_003_000_000_000),
        )
        s.flush(wait=True)
        print("frame 2 acked:", s.acked_fsn())
        assert s.acked_fsn() == fsn + 1, (s.acked_fsn(), fsn)


with questdb.connect(conf) as db:
    {"main": main, "sentinels": sentinels}[scenario](db)
print("done", scenario)
