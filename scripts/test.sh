#!/usr/bin/env bash
# The test command: installs everything the tests need (the main job's
# packages plus the test-only ones: `install-deps.sh --test`), then runs the
# three test layers (unit, integration against real binaries and a zfs-fuse
# pool, privileged end-to-end), format and lint checks, and the operator's
# scripts: the quickstart inside a network namespace that imitates a host on
# 192.0.2.0/24, and the Debian package in a scratch root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Test pools left by an interrupted earlier run keep zfs-fuse mounts and
# threads busy: remove them first.
for p in $(zpool list -H -o name 2>/dev/null | grep -E '^(rvt[0-9]+x[0-9]+|imgc[0-9]+|qst[0-9]+)$' || true); do
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
# The operator's side, with the binaries the tests just built (no release
# build): the Debian package unpacked into a scratch root, then the
# quickstart and its --remove, run with that package's binaries inside a
# network namespace that looks like a host on 192.0.2.0/24.
ops_status=0
pkgroot=$(mktemp -d /tmp/rvmadm-pkgroot.XXXXXX)
cargo build -q --workspace --bins \
  && PKG_BIN_DIR=${CARGO_TARGET_DIR:-target}/debug bash scripts/test-package.sh "$pkgroot" \
  && timeout 15m bash scripts/test-quickstart.sh "$pkgroot/usr/sbin" || ops_status=1
rm -rf "$pkgroot"
# One closing line for the whole workspace: cargo's last "test result" is a
# doc-test binary with nothing in it, which says nothing about the run.
awk '/^test result:/ {p += $4; f += $6; s += $8} END {printf "workspace: %d passed, %d failed, %d skipped\n", p, f, s}' /tmp/rvmadm-test.log
[ "$ops_status" = 0 ] || echo "test.sh: the package or quickstart checks failed" >&2
[ "$status" = 0 ] && status=$ops_status
exit "$status"
