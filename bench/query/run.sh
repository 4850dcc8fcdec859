#!/usr/bin/env bash
# Time-series query benchmark (TSBS-style `cpu` tables): each query run
# through the official Python client against a release `quiver serve` and
# in-process DuckDB 2.0 over the same rows (loaded from quiver's Parquet
# export), in the same run; prints per query the median time of both and
# quiver/DuckDB. Target: within 1.5x on every query (first bar 2x).
#
#   bench/query/run.sh [ROWS]        (default 10,000,000 per table)
#
# Uses the interop venv that ./scripts/test.sh creates, and installs DuckDB
# into it when missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver/target}
venv=${QUIVER_VENV:-$HOME/.cache/quiver/venv}
[ -x "$venv/bin/python" ] || { echo "no venv at $venv: run ./scripts/test.sh first" >&2; exit 1; }
"$venv/bin/python" -c 'import duckdb' 2>/dev/null || "$venv/bin/pip" install --quiet duckdb==2.0.1
echo "building release quiver..." >&2
cargo build --release -q -p quiver-server --manifest-path "$root/Cargo.toml"
exec "$venv/bin/python" "$root/bench/query/query.py" "$CARGO_TARGET_DIR/release/quiver" "${1:-10000000}"
