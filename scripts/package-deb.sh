#!/usr/bin/env bash
# Builds the Debian package: vmadm, imgadm and imgapid in /usr/sbin, the
# systemd units, example configs, man pages and bash/zsh/fish completions.
#
#   scripts/package-deb.sh [OUTDIR]     (default: target/debian)
#
# Prints the path of the .deb on stdout. Built with dpkg-deb from a staging
# tree: dpkg-deb is part of every Debian system, so packaging needs nothing
# beyond crates.io and Debian (cargo-deb would be one more tool to compile,
# and would still need the pages and completions made by a step of ours).
#
# Env: PKG_BIN_DIR  take vmadm, imgadm, imgapid and rvmadm-docgen from this
#                   directory instead of a release build (the tests pass
#                   their already-built debug binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/debian}

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
ARCH=$(dpkg --print-architecture)
[ -n "$VERSION" ] || { echo "package-deb: no version in Cargo.toml" >&2; exit 1; }

if [ -n "${PKG_BIN_DIR:-}" ]; then
    BIN=$(cd "$PKG_BIN_DIR" && pwd)
else
    export PATH="$HOME/.cargo/bin:$PATH"
    # One build for the three binaries and the page generator.
    cargo build --release -q -p rvmadm -p imgapid -p rvmadm-docgen --bins >&2
    # vmadm as it should be installed: static and not position-independent,
    # so it starts with no dynamic loader (docs/performance.md). This
    # replaces the dynamic vmadm the line above built.
    cargo -q vmadm-release >&2
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
for b in vmadm imgadm imgapid rvmadm-docgen; do
    [ -x "$BIN/$b" ] || { echo "package-deb: $BIN/$b missing" >&2; exit 1; }
done

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/rvmadm-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/pkg
GEN=$STAGE/gen
DOC=$PKG/usr/share/doc/rvmadm

# Binaries: administration tools, so sbin (their pages are section 8).
install -d "$PKG/usr/sbin"
for b in vmadm imgadm imgapid; do
    install -m 0755 "$BIN/$b" "$PKG/usr/sbin/$b"
    command -v strip >/dev/null && strip --strip-unneeded "$PKG/usr/sbin/$b"
done

# Man pages and completions, generated from the binaries' clap definitions.
"$BIN/rvmadm-docgen" "$GEN"
for sec in 5 8; do
    install -d "$PKG/usr/share/man/man$sec"
    for page in "$GEN/man/man$sec"/*; do
        gzip -9n <"$page" >"$PKG/usr/share/man/man$sec/$(basename "$page").gz"
    done
done
install -d "$PKG/usr/share/bash-completion/completions" \
    "$PKG/usr/share/zsh/vendor-completions" "$PKG/usr/share/fish/vendor_completions.d"
install -m 0644 "$GEN"/completions/bash/* "$PKG/usr/share/bash-completion/completions/"
install -m 0644 "$GEN"/completions/zsh/* "$PKG/usr/share/zsh/vendor-completions/"
install -m 0644 "$GEN"/completions/fish/* "$PKG/usr/share/fish/vendor_completions.d/"

# systemd units, pointed at the packaged paths (the files in dist/ are for
# a hand install under /usr/local).
install -d "$PKG/usr/lib/systemd/system"
for unit in dist/linux/vmadm-autoboot.service imgapid/dist/imgapid.service; do
    sed -e 's|/usr/local/sbin/|/usr/sbin/|g; s|/usr/local/bin/|/usr/sbin/|g' \
        -e 's|/usr/local/share/doc/|/usr/share/doc/|g' \
        "$unit" >"$PKG/usr/lib/systemd/system/$(basename "$unit")"
done

# Documentation and example configuration (nothing in /etc: the operator
# writes /etc/vmadm.toml for their own pool and bridges).
install -d "$DOC/examples"
install -m 0644 README.md docs/*.md "$DOC/"
install -m 0644 examples/busybox-jail.json "$DOC/examples/"
install -m 0644 imgapid/dist/imgapid.toml.example "$DOC/examples/imgapid.toml"
cat >"$DOC/examples/vmadm.toml" <<'T'
# /etc/vmadm.toml: see vmadm.toml(5).
pool = "zones"
driver = "auto"
runtime = "runc"
# Make a missing bridge when a jail starts (never with a host address).
create_bridges = false

[networks]
admin = "vmadm0"

# [[sources]]
# url = "http://images.example.org:8080"
# type = "imgapi"
T
cat >"$DOC/copyright" <<T
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: rvmadm

Files: *
License: MIT
T
gzip -9n <"$DOC/README.md" >"$DOC/README.md.gz" && rm "$DOC/README.md"

# Shared libraries the binaries link (libc, and liblzma/libzstd when the
# build found the system's), as the Debian packages that hold them.
shlib_pkgs() {
    local lib real
    # A static binary (the release vmadm) has no libraries: ldd says so and
    # exits 1, which is not an error here.
    for b in "$PKG"/usr/sbin/*; do ldd "$b" || true; done 2>/dev/null | awk '/=>/ { print $3 }' | sort -u |
        while read -r lib; do
            real=$(readlink -f "$lib")
            dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || dpkg -S "$lib"
        done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g'
}
SHLIBS=$(shlib_pkgs)
[ -n "$SHLIBS" ] || SHLIBS="libc6, libgcc-s1"

# Control files. imgapid's unit runs as the system user imgapid.
install -d "$PKG/DEBIAN"
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
cat >"$PKG/DEBIAN/control" <<T
Package: rvmadm
Version: $VERSION
Architecture: $ARCH
Maintainer: rvmadm developers <rvmadm@localhost>
Installed-Size: $SIZE
Depends: $SHLIBS, iproute2, runc | crun, zfs-fuse | zfsutils-linux
Section: admin
Priority: optional
Description: SmartOS-style vmadm and imgadm for jails on ZFS
 vmadm creates and runs jails (OCI containers on Linux, jails on FreeBSD)
 from SmartOS zone JSON; imgadm imports, builds and publishes images as
 ZFS datasets; imgapid serves images over IMGAPI and DSAPI.
T
cat >"$PKG/DEBIAN/postinst" <<'T'
#!/bin/sh
set -e
if [ "$1" = configure ] && ! getent passwd imgapid >/dev/null; then
    useradd --system --home-dir /var/lib/imgapid --no-create-home \
        --shell /usr/sbin/nologin imgapid
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
fi
T
chmod 0755 "$PKG/DEBIAN/postinst"

mkdir -p "$OUT"
DEB=$OUT/rvmadm_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >&2
echo "$DEB"
