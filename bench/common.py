"""What the benchmarks share: the S1-narrow frame (ANCHORS.md: designated
timestamp, LONG, DOUBLE, SYMBOL of cardinality 8, VARCHAR of 16 bytes) and
starting a release quiver on a free port."""
import re
import subprocess

import numpy as np
import pandas as pd


def s1_frame(n):
    rng = np.random.default_rng(42)
    syms = [f"SYM-{i}" for i in range(8)]
    return pd.DataFrame({
        "ts": pd.date_range("2024-01-01", periods=n, freq="us"),
        "i64": rng.integers(0, 1 << 40, n, dtype=np.int64),
        "f64": rng.random(n),
        "sym": pd.Categorical.from_codes(rng.integers(0, 8, n), categories=syms),
        # 16-byte strings
        "str": pd.array([f"v{i:015d}" for i in range(n)], dtype="string[pyarrow]"),
    })


def start_server(binary, data_dir, extra=()):
    """`quiver serve` on 127.0.0.1, a free port, appending its log to
    DATA_DIR.log (a restart on the same data keeps the first log); returns
    the process and its port."""
    log = open(data_dir + ".log", "a")
    p = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0", *extra],
                         stdout=subprocess.PIPE, stderr=log, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        p.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return p, int(m.group(1))
