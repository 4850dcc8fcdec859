#!/usr/bin/env bash
# Runs every Quiver test. Installs what the tests need on first use:
#   - Rust dependencies (cargo fetches them; builds go to $CARGO_TARGET_DIR,
#     default ~/.cache/quiver/target, so repeated runs reuse them);
#   - a Python venv with the official QuestDB client (questdb==6.0.0), pandas,
#     pyarrow and polars, at $QUIVER_VENV (default ~/.cache/quiver/venv), used
#     by the interop tests as the real peer;
#   - openssl (from apt when missing), which makes the wss:: tests'
#     certificates.
# Exits non-zero when anything fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver/target}
export QUIVER_VENV=${QUIVER_VENV:-$HOME/.cache/quiver/venv}
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/quiver/pip}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n==> %s\n' "$*"; }

step "python venv for interop peers ($QUIVER_VENV)"
requirements="$root/scripts/requirements-interop.txt"
stamp="$QUIVER_VENV/.quiver-requirements"
if [ ! -x "$QUIVER_VENV/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  python3 -m venv --clear "$QUIVER_VENV"
  "$QUIVER_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi
"$QUIVER_VENV/bin/python" -c 'import questdb, pandas, pyarrow, polars, influxdb, influxdb_client; print("questdb", questdb.__version__)'

step "tools"
# openssl makes the certificate chain of the wss:: tests (sdk_tls.rs).
if ! command -v openssl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq openssl >/dev/null || sudo apt-get install -y -qq openssl >/dev/null
  fi
fi
openssl version

step "format"
cargo fmt --all -- --check

step "clippy (also type-checks benches and examples)"
cargo clippy --workspace --all-targets -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast --lib --bins --tests
fi

step "doc tests"
cargo test --workspace --doc

# The SDK's Polars bridge is behind a feature (Polars is heavy to build), so
# the steps above do not see it: lint, test and document it here.
step "Polars (quiver-client feature polars)"
cargo clippy -p quiver-client --features polars --all-targets -- -D warnings
cargo clippy -p quiver-server --features sdk-polars --test sdk_polars -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run -p quiver-server --features sdk-polars --test sdk_polars --no-fail-fast
else
  cargo test -p quiver-server --features sdk-polars --test sdk_polars --no-fail-fast
fi
cargo test -p quiver-client --features polars --doc

printf '\nall tests passed\n'
