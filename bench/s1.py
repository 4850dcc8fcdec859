"""The S1-narrow frame the ingest benchmarks send (ANCHORS.md): designated
timestamp, LONG, DOUBLE, SYMBOL of cardinality 8, VARCHAR of 16 bytes."""
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
