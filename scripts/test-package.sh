#!/usr/bin/env bash
# The Debian package test: builds the package with scripts/package-deb.sh
# (from the already-built debug binaries unless PKG_BIN_DIR says otherwise),
# unpacks it into a scratch root with `dpkg -x` and checks what an operator
# gets: the three binaries answering --version, the systemd units pointing
# at them, each man page rendering with `man -l` without warnings, the
# completions for bash, zsh and fish, and the example configs.
#
#   scripts/test-package.sh [SCRATCH_ROOT]
#
# Leaves the unpacked tree in SCRATCH_ROOT (default: a new temporary
# directory, removed at exit) so the quickstart test can run its binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

if [ -z "${PKG_BIN_DIR:-}" ]; then
    cargo build -q --workspace --bins
    export PKG_BIN_DIR=$TARGET/debug
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rvmadm-pkgtest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
DEST=${1:-$WORK/root}
mkdir -p "$DEST"

fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

DEB=$(bash scripts/package-deb.sh "$WORK/out")
check "package built: $(basename "$DEB")" test -s "$DEB"
check "control: package rvmadm" sh -c "dpkg-deb -f '$DEB' Package | grep -qx rvmadm"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
check "control: version $VERSION" sh -c "dpkg-deb -f '$DEB' Version | grep -qx '$VERSION'"
dpkg -x "$DEB" "$DEST"

for b in vmadm imgadm imgapid; do
    f=$DEST/usr/sbin/$b
    check "binary $b is executable" test -x "$f"
    check "$b --version says $b $VERSION" sh -c "'$f' --version | grep -qx '$b $VERSION'"
done

for u in vmadm-autoboot.service imgapid.service; do
    f=$DEST/usr/lib/systemd/system/$u
    check "unit $u" test -s "$f"
    exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$f")
    check "unit $u runs $exe, which the package holds" test -x "$DEST$exe"
done

pages=0
for page in "$DEST"/usr/share/man/man[58]/*.gz; do
    pages=$((pages + 1))
    name=$(basename "$page" .gz)
    text=$(MANWIDTH=80 man --warnings -l "$page" 2>"$WORK/man.err") || true
    if [ -n "$text" ] && [ ! -s "$WORK/man.err" ]; then ok "man -l $name"; else bad "man -l $name: $(head -n3 "$WORK/man.err")"; fi
done
for want in vmadm.8 imgadm.8 imgapid.8 vmadm-create.8 imgadm-import.8 vmadm.toml.5 imgapid.toml.5; do
    sec=${want##*.}
    check "page $want present" test -s "$DEST/usr/share/man/man$sec/$want.gz"
done
echo "($pages pages)"
check "vmadm(8) lists the create subcommand" sh -c "man -l '$DEST/usr/share/man/man8/vmadm.8.gz' 2>/dev/null | grep -q 'vmadm-create(8)'"
check "imgapid(8) documents --config" sh -c "man -l '$DEST/usr/share/man/man8/imgapid.8.gz' 2>/dev/null | grep -q -- '--config'"

for b in vmadm imgadm imgapid; do
    f=$DEST/usr/share/bash-completion/completions/$b
    check "bash completion for $b parses" bash -n "$f"
    check "bash completion for $b registers" grep -q "complete .*$b" "$f"
    check "zsh completion _$b" grep -q "#compdef $b" "$DEST/usr/share/zsh/vendor-completions/_$b"
    check "fish completion $b.fish" grep -q "complete -c $b" "$DEST/usr/share/fish/vendor_completions.d/$b.fish"
done
check "bash completion offers vmadm's verbs" sh -c "grep -q 'create' '$DEST/usr/share/bash-completion/completions/vmadm'"

EX=$DEST/usr/share/doc/rvmadm/examples
check "example vmadm.toml" test -s "$EX/vmadm.toml"
check "example imgapid.toml" test -s "$EX/imgapid.toml"
# The example vmadm.toml must be one the tools accept (unknown keys and bad
# values are refused): `imgadm sources` loads it and nothing else.
check "imgadm accepts the example vmadm.toml" env VMADM_CONFIG="$EX/vmadm.toml" "$DEST/usr/sbin/imgadm" sources

if [ "$fails" = 0 ]; then echo "package: all checks passed"; else echo "package: $fails check(s) failed"; exit 1; fi
