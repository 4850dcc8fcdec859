#!/usr/bin/env bash
# Egress benchmark: the official Python client's query(...).to_arrow() of
# S1-narrow rows (designated timestamp, LONG, DOUBLE, SYMBOL cardinality 8,
# VARCHAR 16 B) from a release `quiver serve`, next to the same client reading
# quiver's recorded frames from a null replay peer (the ceiling; target: quiver
# >= 0.8x of it) and pyarrow reading the table from a local Arrow IPC file.
#
#   bench/egress/run.sh [ROWS]        (default 10,000,000)
#
# Uses the interop venv that ./scripts/test.sh creates.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver/target}
venv=${QUIVER_VENV:-$HOME/.cache/quiver/venv}
[ -x "$venv/bin/python" ] || { echo "no venv at $venv: run ./scripts/test.sh first" >&2; exit 1; }
echo "building release quiver..." >&2
cargo build --release -q -p quiver-server --manifest-path "$root/Cargo.toml"
exec "$venv/bin/python" "$root/bench/egress/egress.py" "$CARGO_TARGET_DIR/release/quiver" "${1:-10000000}"
