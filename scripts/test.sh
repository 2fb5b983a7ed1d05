#!/usr/bin/env bash
# The test command: installs everything the tests need, then runs the three
# test layers (unit, integration against real binaries and a zfs-fuse pool,
# privileged end-to-end) plus format and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/rvmadm-test.log
