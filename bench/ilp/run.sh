#!/usr/bin/env bash
# Line protocol ingest benchmark: the official Python client's dataframe() of
# S1-narrow rows over http:: into a release `quiver serve`, next to the same
# frame over QWP (ws::) in the same run.
#
#   bench/ilp/run.sh [ROWS] [RUNS]      (default 10,000,000 rows, 3 runs)
#
# Uses the interop venv that ./scripts/test.sh creates.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver/target}
venv=${QUIVER_VENV:-$HOME/.cache/quiver/venv}
[ -x "$venv/bin/python" ] || { echo "no venv at $venv: run ./scripts/test.sh first" >&2; exit 1; }
echo "building release quiver..." >&2
cargo build --release -q -p quiver-server --manifest-path "$root/Cargo.toml"
exec "$venv/bin/python" "$root/bench/ilp/ilp.py" "$CARGO_TARGET_DIR/release/quiver" "${1:-10000000}" "${2:-3}"
