#!/bin/sh
# Builds a small busybox root tree from Debian's busybox-static and turns it
# into an image (manifest + file) with `imgadm build`, which puts the tree
# under root/ of the image dataset (the SmartOS zone layout).
#
#   scripts/build-busybox-image.sh OUTDIR [field=value ...]
#
# Env: IMGADM (default: imgadm on PATH, else target/{release,debug}/imgadm),
#      BUSYBOX (a static busybox binary; default: the one from busybox-static,
#      fetched with `apt-get download` when the package is not installed).
# Extra field=value arguments are passed to `imgadm build` (e.g. uuid=…).
# Prints the build output (uuid, manifest and file paths) on stdout.
set -eu

[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [field=value ...]" >&2; exit 2; }
OUTDIR=$1; shift
HERE=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${IMGADM:-}" ]; then
    if command -v imgadm >/dev/null 2>&1; then IMGADM=imgadm
    elif [ -x "${CARGO_TARGET_DIR:-$HERE/target}/release/imgadm" ]; then IMGADM="${CARGO_TARGET_DIR:-$HERE/target}/release/imgadm"
    elif [ -x "${CARGO_TARGET_DIR:-$HERE/target}/debug/imgadm" ]; then IMGADM="${CARGO_TARGET_DIR:-$HERE/target}/debug/imgadm"
    else echo "$0: no imgadm found; build it or set IMGADM" >&2; exit 1
    fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/busybox-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

if [ -z "${BUSYBOX:-}" ]; then
    if dpkg -s busybox-static >/dev/null 2>&1 && [ -x /bin/busybox ]; then
        BUSYBOX=/bin/busybox
    else
        # Not installed: fetch the package by name and unpack it privately.
        (cd "$WORK" && apt-get download busybox-static >/dev/null)
        dpkg-deb -x "$WORK"/busybox-static_*.deb "$WORK/pkg"
        BUSYBOX="$WORK/pkg/bin/busybox"
    fi
fi

ROOT="$WORK/root"
mkdir -p "$ROOT"
for d in bin sbin usr/bin usr/sbin etc root tmp proc sys dev run var/log var/run; do
    mkdir -p "$ROOT/$d"
done
chmod 1777 "$ROOT/tmp"
chmod 0700 "$ROOT/root"
cp "$BUSYBOX" "$ROOT/bin/busybox"
chmod 0755 "$ROOT/bin/busybox"

# One symlink per applet, at the path busybox itself reports (sbin/init too).
"$ROOT/bin/busybox" --list-full | while read -r applet; do
    [ "$applet" = "bin/busybox" ] && continue
    mkdir -p "$ROOT/$(dirname "$applet")"
    ln -sf /bin/busybox "$ROOT/$applet"
done
[ -L "$ROOT/sbin/init" ] || ln -sf /bin/busybox "$ROOT/sbin/init"

cat > "$ROOT/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$ROOT/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
cat > "$ROOT/etc/shadow" <<'S'
root:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
S
chmod 0600 "$ROOT/etc/shadow"
cat > "$ROOT/etc/hosts" <<'H'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
H
cat > "$ROOT/etc/resolv.conf" <<'R'
# placeholder: vmadm writes the VM's resolvers here
R
echo busybox > "$ROOT/etc/hostname"
# A container has no consoles to spawn gettys on: init runs the sysinit
# steps, then waits (it reaps orphans and stops cleanly on SIGTERM).
cat > "$ROOT/etc/inittab" <<'I'
::sysinit:/bin/mkdir -p /run /var/run /tmp
::sysinit:/bin/hostname -F /etc/hostname
::shutdown:/bin/sync
::ctrlaltdel:/sbin/reboot
I
cat > "$ROOT/etc/profile" <<'F'
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PS1='\h:\w\$ '
F

VERSION=$("$ROOT/bin/busybox" 2>&1 | head -n1 | sed -n 's/^BusyBox v\([0-9][0-9.]*\).*/\1/p')
[ -n "$VERSION" ] || VERSION=0.0.0

"$IMGADM" build "$ROOT" -o "$OUTDIR" \
    name=busybox "version=$VERSION" os=linux type=lx-dataset \
    "description=BusyBox $VERSION static root (Debian busybox-static), busybox init as /sbin/init" \
    "$@"
