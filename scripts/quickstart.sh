#!/usr/bin/env bash
# The first command on a fresh Debian machine: installs what rvmadm needs,
# builds it, makes sure a pool exists (a file-backed one when the configured
# pool does not), builds the busybox image and imports it through a local
# imgapid, creates a jail with a NIC from examples/busybox-jail.json, starts
# it, shows `vmadm list` and runs a command inside it.
#
#   sudo bash scripts/quickstart.sh
#
# Env: VMADM_CONFIG (default /etc/vmadm.toml, written when missing),
#      QS_POOL_SIZE (file-backed pool size, default 2G).
# The jail's NIC sits on the bridge `vmadm0` (created by vmadm) with
# 192.0.2.10/24; the bridge gets 192.0.2.1/24, a documentation range that is
# never routed anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (sudo bash $0)" >&2; exit 1; }
say() { printf '\n== %s\n' "$*" >&2; }

say "installing packages"
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "quickstart: cargo not found; install Rust (rustup) first" >&2; exit 1; }

say "building (release)"
cargo build --release -q -p rvmadm -p imgapid
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
VMADM=$TARGET/vmadm
IMGADM=$TARGET/imgadm
IMGAPID=$TARGET/imgapid

export VMADM_CONFIG=${VMADM_CONFIG:-/etc/vmadm.toml}
if [ ! -f "$VMADM_CONFIG" ]; then
    say "writing $VMADM_CONFIG"
    mkdir -p "$(dirname "$VMADM_CONFIG")"
    cat > "$VMADM_CONFIG" <<'T'
pool = "zones"
driver = "auto"
runtime = "runc"
create_bridges = true

[networks]
admin = "vmadm0"
T
fi
POOL=$(sed -n 's/^pool *= *"\([^"]*\)".*/\1/p' "$VMADM_CONFIG" | head -n1)
POOL=${POOL:-zones}

if ! zpool list -H -o name "$POOL" >/dev/null 2>&1; then
    FILE=/var/lib/vmadm/$POOL.zpool
    say "pool $POOL does not exist: creating it on $FILE"
    mkdir -p /var/lib/vmadm
    [ -f "$FILE" ] || truncate -s "${QS_POOL_SIZE:-2G}" "$FILE"
    zpool create -f -m "/$POOL" "$POOL" "$FILE"
fi

WORK=$(mktemp -d /tmp/rvmadm-quickstart.XXXXXX)
SRV_PID=
cleanup() {
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

say "building the busybox image"
IMAGE_UUID=$(cat /proc/sys/kernel/random/uuid)
IMGADM=$IMGADM bash scripts/build-busybox-image.sh "$WORK/image" "uuid=$IMAGE_UUID" >&2
MANIFEST=$(ls "$WORK"/image/*.json)
FILE=$(ls "$WORK"/image/* | grep -v '\.json$' | head -n1)

say "importing image $IMAGE_UUID through a local imgapid"
PORT=$((20000 + RANDOM % 20000))
cat > "$WORK/imgapid.toml" <<T
listen = "127.0.0.1:$PORT"
data_dir = "$WORK/imgapi-data"
[auth]
allow_unauthenticated_writes = true
T
"$IMGAPID" --config "$WORK/imgapid.toml" 2>"$WORK/imgapid.log" &
SRV_PID=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/ping" >/dev/null 2>&1 && break
    sleep 0.1
done
"$IMGADM" publish -q -m "$MANIFEST" -f "$FILE" "http://127.0.0.1:$PORT"
"$IMGADM" import -q -S "http://127.0.0.1:$PORT" "$IMAGE_UUID"
"$IMGADM" list

say "creating a jail from examples/busybox-jail.json"
BRIDGE=$(sed -n 's/^admin *= *"\([^"]*\)".*/\1/p' "$VMADM_CONFIG" | head -n1)
BRIDGE=${BRIDGE:-vmadm0}
sed "s/IMAGE_UUID/$IMAGE_UUID/" examples/busybox-jail.json > "$WORK/payload.json"
"$VMADM" create -f "$WORK/payload.json" 2>"$WORK/create.err" || { cat "$WORK/create.err" >&2; exit 1; }
cat "$WORK/create.err" >&2
VM=$(grep -o '[0-9a-f]\{8\}-[0-9a-f-]\{27\}' "$WORK/create.err" | head -n1)
# The gateway of the example payload lives on the bridge vmadm created.
if ip link show "$BRIDGE" >/dev/null 2>&1 && ! ip -o addr show dev "$BRIDGE" | grep -q '192\.0\.2\.1/'; then
    ip addr add 192.0.2.1/24 dev "$BRIDGE"
fi
# The example has autoboot true, so create already booted it; start is for
# payloads that do not.
if ! "$VMADM" get "$VM" | grep -q '"state": *"running"'; then
    "$VMADM" start "$VM"
fi

say "vmadm list"
"$VMADM" list

say "running a command inside $VM"
"$VMADM" exec "$VM" -- sh -c 'echo "hello from $(hostname)"; ip -o -4 addr show net0; ping -c 1 -W 2 192.0.2.1 | tail -n 2'

say "done: try '$VMADM console $VM', then '$VMADM stop $VM' and '$VMADM delete $VM'"
