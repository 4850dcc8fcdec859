#!/usr/bin/env python3
"""Ingest with request_durable_ack=on: the client refuses to connect unless
the server answers `X-QWP-Durable-Ack: enabled`.

usage: durable.py PORT [extra conf keys...]

  durable_rows  row API: 2 rows, flush_and_get_fsn() + wait(); then 1 row,
                flush(wait=True); then close(wait=True).
  durable_df    dataframe(): DF_ROWS rows (several messages).

Prints connection events and any rejection; exits non-zero on any error.
"""
import sys
import time

import numpy as np
import pandas as pd
import questdb
from questdb import TimestampNanos

port = int(sys.argv[1])
extra = "".join(f"{kv};" for kv in sys.argv[2:])
conf = (f"ws::addr=127.0.0.1:{port};auto_flush=off;"
        f"request_durable_ack=on;{extra}")

BASE_NS = 1_700_000_000_000_000_000
DF_ROWS = 40_000

events = []
rejections = []


def poll_acked(sender, fsn, timeout=10.0):
    """Waits until the completion watermark (durable acks) reaches fsn."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        acked = sender.acked_fsn()
        if acked is not None and acked >= fsn:
            return True
        time.sleep(0.01)
    return False

with questdb.connect(conf, connection_listener=events.append,
                     error_handler=rejections.append) as db:
    s = db.sender()
    s.row("durable_rows", symbols={"k": "a"}, columns={"v": 1, "s": "one"},
          at=TimestampNanos(BASE_NS))
    s.row("durable_rows", symbols={"k": "b"}, columns={"v": 2, "s": "two"},
          at=TimestampNanos(BASE_NS + 1))
    fsn = s.flush_and_get_fsn()
    s.wait(timeout_millis=10_000)
    # wait() returns on the OK ack; with durable acks the completion
    # watermark (acked_fsn) moves when the durable ack arrives.
    assert poll_acked(s, fsn), (s.acked_fsn(), fsn)
    print("rows frame 1 fsn", fsn, "acked", s.acked_fsn())
    assert s.acked_fsn() == fsn, (s.acked_fsn(), fsn)
    s.row("durable_rows", symbols={"k": "a"}, columns={"v": 3, "s": "three"},
          at=TimestampNanos(BASE_NS + 2))
    s.flush(wait=True)
    assert poll_acked(s, fsn + 1), (s.acked_fsn(), fsn)
    print("rows frame 2 acked", s.acked_fsn())
    assert s.acked_fsn() == fsn + 1, (s.acked_fsn(), fsn)
    s.close(wait=True)

    i = np.arange(DF_ROWS, dtype=np.int64)
    df = pd.DataFrame({
        "i": i,
        "sym": pd.Categorical.from_codes(i % 3, ["x", "y", "z"]),
        "ts": pd.to_datetime(BASE_NS + i * 1_000, unit="ns"),
    })
    db.dataframe(df, table_name="durable_df", at="ts")
    print("dataframe done")

for e in events:
    print("event:", e.kind, e.cause_code, e.cause_msg)
for r in rejections:
    print("rejection:", r)
if rejections:
    sys.exit(1)
print("done durable")
