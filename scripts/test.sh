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
# Test pools left by an interrupted earlier run keep zfs-fuse mounts and
# threads busy: remove them first.
for p in $(zpool list -H -o name 2>/dev/null | grep -E '^(rvt[0-9]+x[0-9]+|imgc[0-9]+)$' || true); do
  timeout 60 zpool destroy -f "$p" || echo "test.sh: could not destroy stale pool $p" >&2
done
# One test at a time: zfs-fuse is the shared daemon under every integration
# test and has hung under many concurrent pool/mount operations here. The
# timeout turns a hang into a clear failure instead of a silent CI overrun.
export RUST_TEST_THREADS=1
set +e
timeout 45m cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/rvmadm-test.log
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace: cargo's last "test result" is a
# doc-test binary with nothing in it, which says nothing about the run.
awk '/^test result:/ {p += $4; f += $6; s += $8} END {printf "workspace: %d passed, %d failed, %d skipped\n", p, f, s}' /tmp/rvmadm-test.log
exit "$status"
