#!/usr/bin/env bash
# Installs Garage, the distributed S3-compatible store that imgapid's replica
# tests (imgapid/tests/replicas.rs) run as a 3-node cluster on loopback.
# Built from crates.io with the LMDB metadata engine only (no SQLite, no
# K2V, no metrics): that is all the tests need and keeps the build short.
# Idempotent: skips when the pinned version is already installed. Run by
# scripts/install-deps.sh; the tests look in $GARAGE_ROOT/bin (default
# /opt/garage/bin) and then on PATH.
set -euo pipefail
want=2.5.0
root=${GARAGE_ROOT:-/opt/garage}
bin="$root/bin/garage"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qE "[:v ]$want( |$)"; then
  exit 0
fi
export PATH="$HOME/.cargo/bin:$PATH"
echo "garage: building garage $want into $root (cargo install, several minutes)" >&2
cargo install garage --version "=$want" --locked --no-default-features \
  --features bundled-libs,lmdb --root "$root"
"$bin" --version >/dev/null
