#!/usr/bin/env python3
"""A server rejection surfaces as the client's error, and a new connection
works afterwards.

usage: errors.py PORT CASE [extra conf keys...]

1. Row API: table `err_target` is created with `qty` LONG, `note` VARCHAR
   (row qty=1, note='first'), flush(wait=True): committed.
2. One frame with two tables: a row for a new table `err_side` (y=5) and a
   row for `err_target` whose `qty` has the wrong type for CASE:
     varchar    'not a number' (VARCHAR)
     array      numpy float64 array [1.0, 2.0] (DOUBLE_ARRAY)
     symbol     symbol 'abc' (SYMBOL)
     dataframe  instead of the row API, db.dataframe() of a frame whose
                `qty` is a string column (VARCHAR), plus note='second'.
   The client's error is caught and printed as `rejected: key=value`
   lines (exc, code, status, category, sequence, message).
3. A new questdb.connect() sends qty=3, note='third' to `err_target` and
   waits for the ack; prints `recovered`.
"""
import sys

import numpy as np
import pandas as pd
import questdb
from questdb import TimestampNanos

port = int(sys.argv[1])
case = sys.argv[2]
extra = "".join(f"{kv};" for kv in sys.argv[3:])
conf = f"ws::addr=127.0.0.1:{port};auto_flush=off;{extra}"
BASE_NS = 1_700_000_000_000_000_000


def report(e):
    print("rejected: exc=" + type(e).__name__)
    print("rejected: code=" + str(e.code.name if hasattr(e.code, "name") else e.code))
    se = e.sender_error
    if se is not None:
        print(f"rejected: status={se.status}")
        print(f"rejected: category={se.category.name}")
        print(f"rejected: sequence={se.message_sequence}")
        print("rejected: message=" + se.message.replace("\n", " "))
    else:
        print("rejected: message=" + str(e).replace("\n", " "))


rejections = []
with questdb.connect(conf, error_handler=rejections.append) as db:
    with db.sender() as s:
        s.row("err_target", columns={"qty": 1, "note": "first"}, at=TimestampNanos(BASE_NS))
        s.flush(wait=True)
        print("committed first row")

    try:
        if case == "dataframe":
            df = pd.DataFrame({
                "qty": pd.Series(["x", "y"], dtype=object),
                "note": pd.Series(["second", "second"], dtype=object),
                "ts": pd.to_datetime([BASE_NS + 1, BASE_NS + 2], unit="ns"),
            })
            db.dataframe(df, table_name="err_target", at="ts")
        else:
            with db.sender() as s:
                s.row("err_side", columns={"y": 5}, at=TimestampNanos(BASE_NS + 1))
                if case == "varchar":
                    s.row("err_target", columns={"qty": "not a number", "note": "second"},
                          at=TimestampNanos(BASE_NS + 2))
                elif case == "array":
                    s.row("err_target", columns={"qty": np.array([1.0, 2.0]), "note": "second"},
                          at=TimestampNanos(BASE_NS + 2))
                elif case == "symbol":
                    s.row("err_target", symbols={"qty": "abc"}, columns={"note": "second"},
                          at=TimestampNanos(BASE_NS + 2))
                else:
                    raise SystemExit(f"unknown case {case}")
                s.flush()
                s.wait(timeout_millis=10_000)
        print("NOT REJECTED")
    except questdb.QuestDBError as e:
        report(e)

for r in rejections:
    print(f"error_handler: status={r.status} category={r.category.name} message={r.message}")

with questdb.connect(conf) as db2:
    with db2.sender() as s:
        s.row("err_target", columns={"qty": 3, "note": "third"}, at=TimestampNanos(BASE_NS + 3))
        s.flush(wait=True)
print("recovered")
