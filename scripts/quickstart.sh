#!/usr/bin/env bash
# The first command on a fresh Debian machine: installs what rvmadm runs,
# builds vmadm/imgadm/imgapid, makes a file-backed pool, builds the busybox
# image and imports it through a local imgapid, then creates two jails on a
# bridge of their own and shows that they reach each other.
#
#   sudo bash scripts/quickstart.sh            # set up, prove, report
#   sudo bash scripts/quickstart.sh --remove   # take all of it away again
#
# The host's own network is left as it was: the jails' bridge is new (its
# name is checked unused), carries no address at all (vmadm's create_bridges
# never gives one), and the jails' subnet is one the kernel shows no address
# or route overlapping; no route is added anywhere on the host.
#
# Everything it creates is written, one line each, to $QS_DIR/created before
# it is created, and printed at the end; --remove reads that file.
#
# Env: VMADM_CONFIG   config to write (default /etc/vmadm.toml; must not exist)
#      QS_DIR         the record and the pool file (default /var/lib/rvmadm-quickstart)
#      QS_POOL        pool name (default zones; created on a file when missing)
#      QS_POOL_SIZE   size of that file (default 2G)
#      QS_BRIDGE      bridge name (default the first unused of vmqs0..vmqs9)
#      QS_STATE_DIR   vmadm's state_dir (default /var/lib/vmadm)
#      QS_RUN_DIR     vmadm's run_dir (default /run/vmadm)
#      QS_BIN_DIR     use vmadm, imgadm, imgapid from here: no package install,
#                     no build (the tests pass their already-built binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
say() { printf '\n== %s\n' "$*" >&2; }
die() { echo "quickstart: $*" >&2; exit 1; }

QS_DIR=${QS_DIR:-/var/lib/rvmadm-quickstart}
RECORD=$QS_DIR/created

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

# One line per thing created: "<kind> <value>". Written before the thing
# exists, so an interrupted run can still be removed.
record() { printf '%s %s\n' "$1" "$2" >>"$RECORD"; }
recorded() { [ -f "$RECORD" ] && awk -v k="$1" '$1 == k { print $2 }' "$RECORD"; }

# --- removal -------------------------------------------------------------

# zfs-fuse answers "pool is busy" for a moment after datasets were
# destroyed; only that answer is retried.
destroy_pool() {
    local err
    for _ in $(seq 40); do
        err=$(zpool destroy -f "$1" 2>&1) && return 0
        case $err in *busy*) sleep 0.5 ;; *) echo "$err" >&2; return 1 ;; esac
    done
    echo "$err" >&2
    return 1
}

remove() {
    [ -f "$RECORD" ] || { echo "quickstart: nothing to remove ($RECORD does not exist)" >&2; return 0; }
    local bin cfg pool
    bin=$(recorded bin | head -n1)
    cfg=$(recorded config | head -n1)
    pool=$(recorded poolname | head -n1)
    export VMADM_CONFIG=$cfg
    local failed=0
    # Fixed order, whatever the order of creation: VMs before the image they
    # are cloned from, both before the pool, the bridge after its ports.
    for vm in $(recorded vm); do
        if [ -n "$cfg" ] && [ -f "$cfg" ] && "$bin/vmadm" get "$vm" >/dev/null 2>&1; then
            say "deleting VM $vm"
            "$bin/vmadm" delete "$vm" || failed=1
        fi
    done
    for img in $(recorded image); do
        if [ -n "$cfg" ] && [ -f "$cfg" ] && "$bin/imgadm" get -P "$pool" "$img" >/dev/null 2>&1; then
            say "deleting image $img"
            "$bin/imgadm" delete -P "$pool" "$img" || failed=1
        fi
    done
    for br in $(recorded bridge); do
        if ip link show dev "$br" >/dev/null 2>&1; then
            say "deleting bridge $br"
            ip link del dev "$br" || failed=1
        fi
    done
    for p in $(recorded pool); do
        if zpool list -H -o name "$p" >/dev/null 2>&1; then
            say "destroying pool $p"
            destroy_pool "$p" || failed=1
        fi
    done
    # Files and directories go only once everything above is gone: the pool
    # file backs a live pool, and a directory may still be its mountpoint.
    if [ "$failed" != 0 ]; then
        die "some steps failed; $RECORD is kept, fix and run --remove again"
    fi
    for f in $(recorded poolfile) $(recorded config); do
        [ -e "$f" ] && { say "removing $f"; rm -f "$f"; }
    done
    # Directories the quickstart found missing and so made (or had vmadm
    # make): they hold nothing but what the steps above have emptied.
    for d in $(recorded dir | tac); do
        if mountpoint -q "$d"; then
            echo "quickstart: $d is still a mountpoint; left alone" >&2
            failed=1
        elif [ -e "$d" ]; then
            say "removing $d"
            rm -rf --one-file-system "$d"
        fi
    done
    if [ "$failed" = 0 ]; then
        rm -f "$RECORD"
        rmdir "$QS_DIR" 2>/dev/null || true
        say "removed everything the quickstart created"
    else
        die "some steps failed; $RECORD is kept, fix and run --remove again"
    fi
}

case ${1:-} in
    --remove) [ "$(id -u)" = 0 ] || die "run as root"; remove; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || die "run as root (sudo bash $0)"

# --- checks before anything is created ----------------------------------

[ -e "$RECORD" ] && die "a quickstart setup exists (see $RECORD); run '$0 --remove' first"
export VMADM_CONFIG=${VMADM_CONFIG:-/etc/vmadm.toml}
[ -e "$VMADM_CONFIG" ] && die "$VMADM_CONFIG exists and is not ours to change; run with VMADM_CONFIG=/etc/vmadm-quickstart.toml (or another new path)"
POOL=${QS_POOL:-zones}
STATE_DIR=${QS_STATE_DIR:-/var/lib/vmadm}
RUN_DIR=${QS_RUN_DIR:-/run/vmadm}

if [ -n "${QS_BRIDGE:-}" ]; then
    BRIDGE=$QS_BRIDGE
    ip link show dev "$BRIDGE" >/dev/null 2>&1 && die "interface $BRIDGE exists; name a new one in QS_BRIDGE"
else
    BRIDGE=
    for i in 0 1 2 3 4 5 6 7 8 9; do
        ip link show dev "vmqs$i" >/dev/null 2>&1 || { BRIDGE=vmqs$i; break; }
    done
    [ -n "$BRIDGE" ] || die "vmqs0..vmqs9 all exist; name a new bridge in QS_BRIDGE"
fi

# The jails' /24: the first candidate that no IPv4 address or route the
# kernel holds (in any table) overlaps. Default routes overlap everything
# and are ignored: the jails' subnet stays behind a bridge with no host
# address, so the host never routes to it.
ip2int() { local IFS=.; set -- $1; echo $((($1 << 24) | ($2 << 16) | ($3 << 8) | $4)); }
overlaps() {
    local a=${1%/*} pa=${1#*/} b=${2%/*} pb=${2#*/}
    [ "$pa" = "$1" ] && pa=32
    [ "$pb" = "$2" ] && pb=32
    local p=$((pa < pb ? pa : pb))
    local mask=$(((0xffffffff << (32 - p)) & 0xffffffff))
    (($(($(ip2int "$a") & mask)) == $(($(ip2int "$b") & mask))))
}
in_use() {
    ip -o -4 addr show | awk '{ print $4 }'
    ip -4 route show table all | awk '
        $1 ~ /^(local|broadcast|multicast|unicast|anycast|blackhole|unreachable|prohibit|throw|nat)$/ { print $2; next }
        { print $1 }' | grep -v '^default$'
}
SUBNET=
used=$(in_use)
for cand in 198.51.100.0/24 203.0.113.0/24 10.213.47.0/24 172.30.213.0/24; do
    clash=
    for u in $used; do overlaps "$cand" "$u" && { clash=$u; break; }; done
    [ -z "$clash" ] && { SUBNET=$cand; break; }
done
[ -n "$SUBNET" ] || die "every candidate subnet overlaps an address or route on this host"
NET=${SUBNET%.0/24}
IP_A=$NET.10
IP_B=$NET.11

# --- packages and binaries ------------------------------------------------

if [ -n "${QS_BIN_DIR:-}" ]; then
    BIN=$(cd "$QS_BIN_DIR" && pwd)
else
    say "installing packages"
    bash scripts/install-deps.sh
    export PATH="$HOME/.cargo/bin:$PATH"
    command -v cargo >/dev/null || die "cargo not found; install Rust (rustup) first"
    say "building vmadm, imgadm, imgapid (release)"
    # Only the three binaries, and quicker to build than the release profile
    # proper (measured cold on 2 vCPUs: 204 s of CPU instead of 326 s):
    # no LTO and 16 codegen units, so the last crates compile in parallel;
    # the system's libzstd instead of compiling zstd's C sources (liblzma
    # and libbz2 are found through pkg-config already). The binaries run a
    # little slower than a packaged build (scripts/package-deb.sh), which
    # keeps the profile in Cargo.toml as it is.
    pkg-config --exists libzstd && export ZSTD_SYS_USE_PKG_CONFIG=1
    export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    cargo build --release -p rvmadm -p imgapid --bins
    # vmadm as the Debian package ships it (scripts/package-deb.sh): static
    # and not position-independent (`cargo vmadm-release`, an alias in
    # .cargo/config.toml), so it starts with no dynamic loader
    # (docs/performance.md). Only vmadm's own compile and link run again;
    # this replaces the dynamic vmadm the line above built.
    say "building the static vmadm (cargo vmadm-release)"
    cargo vmadm-release
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
    # A static binary has no program interpreter: ldd refuses it.
    if ldd "$BIN/vmadm" >/dev/null 2>&1; then
        die "$BIN/vmadm is dynamically linked; cargo vmadm-release did not take"
    fi
fi
for b in vmadm imgadm imgapid; do [ -x "$BIN/$b" ] || die "$BIN/$b missing"; done
VMADM=$BIN/vmadm
IMGADM=$BIN/imgadm
IMGAPID=$BIN/imgapid

# --- config, directories, pool -------------------------------------------

mkdir -p "$QS_DIR"
: >"$RECORD"
record bin "$BIN"
record poolname "$POOL"
for d in "$STATE_DIR" "$RUN_DIR" "/$POOL"; do
    [ -e "$d" ] || record dir "$d"
done

say "writing $VMADM_CONFIG"
record config "$VMADM_CONFIG"
mkdir -p "$(dirname "$VMADM_CONFIG")"
cat >"$VMADM_CONFIG" <<T
# Written by scripts/quickstart.sh; '--remove' deletes it.
pool = "$POOL"
state_dir = "$STATE_DIR"
image_dir = "$STATE_DIR/images"
run_dir = "$RUN_DIR"
runtime_root = "$RUN_DIR/runc"
driver = "auto"
runtime = "runc"
# vmadm makes the bridge on first use, with no address on it.
create_bridges = true

[networks]
admin = "$BRIDGE"
T

if ! zpool list -H -o name "$POOL" >/dev/null 2>&1; then
    FILE=$QS_DIR/$POOL.zpool
    say "pool $POOL does not exist: creating it on $FILE"
    record poolfile "$FILE"
    truncate -s "${QS_POOL_SIZE:-2G}" "$FILE"
    record pool "$POOL"
    zpool create -f -m "/$POOL" "$POOL" "$FILE"
fi

WORK=$(mktemp -d /tmp/rvmadm-quickstart.XXXXXX)
SRV_PID=
cleanup() {
    local rc=$?
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
    rm -rf "$WORK"
    [ "$rc" = 0 ] || echo "quickstart: failed; what was created so far is in $RECORD: '$0 --remove' takes it away" >&2
}
trap cleanup EXIT

# --- image ----------------------------------------------------------------

say "building the busybox image"
IMAGE_UUID=$(cat /proc/sys/kernel/random/uuid)
IMGADM=$IMGADM bash scripts/build-busybox-image.sh "$WORK/image" "uuid=$IMAGE_UUID" >&2
MANIFEST=$(ls "$WORK"/image/*.json)
FILE=$(ls "$WORK"/image/* | grep -v '\.json$' | head -n1)

say "importing image $IMAGE_UUID through a local imgapid"
PORT=$((20000 + RANDOM % 20000))
cat >"$WORK/imgapid.toml" <<T
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
record image "$IMAGE_UUID"
"$IMGADM" import -q -S "http://127.0.0.1:$PORT" "$IMAGE_UUID"
kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null || true
SRV_PID=
"$IMGADM" list

# --- two jails on their own bridge ---------------------------------------

# Our own payloads: examples/busybox-jail.json carries a gateway, and these
# jails need none; they only talk to each other.
payload() { # alias uuid ip
    cat <<J
{
  "uuid": "$2",
  "brand": "jail",
  "alias": "$1",
  "hostname": "$1",
  "image_uuid": "$IMAGE_UUID",
  "max_physical_memory": 128,
  "quota": 1,
  "autoboot": true,
  "nics": [{"nic_tag": "admin", "ips": ["$3/24"], "primary": true}]
}
J
}
record bridge "$BRIDGE"
VM_A=$(cat /proc/sys/kernel/random/uuid)
VM_B=$(cat /proc/sys/kernel/random/uuid)
for spec in "qs-a $VM_A $IP_A" "qs-b $VM_B $IP_B"; do
    set -- $spec
    say "creating jail $1 ($2) with $3/24 on $BRIDGE"
    record vm "$2"
    payload "$1" "$2" "$3" >"$WORK/$1.json"
    "$VMADM" create -f "$WORK/$1.json"
    # autoboot: create already started it; start is for payloads that do not.
    "$VMADM" get "$2" | grep -q '"state": *"running"' || "$VMADM" start "$2"
done

say "vmadm list"
"$VMADM" list

say "the jail network: $IP_A and $IP_B ping each other across $BRIDGE"
"$VMADM" exec "$VM_A" -- ping -c 2 -W 2 "$IP_B"
"$VMADM" exec "$VM_B" -- ping -c 2 -W 2 "$IP_A"

# --- report ---------------------------------------------------------------

ports=$(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | tr '\n' ' ')
{
    printf '\n== created (recorded in %s; remove with: %s --remove)\n' "$RECORD" "$0"
    printf '  config       %s\n' "$VMADM_CONFIG"
    for f in $(recorded poolfile); do printf '  pool file    %s\n' "$f"; done
    for p in $(recorded pool); do printf '  pool         %s\n' "$p"; done
    for d in $(recorded dir); do printf '  directory    %s\n' "$d"; done
    printf '  bridge       %s (no address; ports: %s)\n' "$BRIDGE" "${ports% }"
    printf '  image        %s\n' "$IMAGE_UUID"
    printf '  VM           %s qs-a %s/24\n' "$VM_A" "$IP_A"
    printf '  VM           %s qs-b %s/24\n' "$VM_B" "$IP_B"
    printf '  (nothing else: no address on the bridge or its ports, IPv4 or IPv6, and no\n   route on the host)\n'
    printf '\ntry: VMADM_CONFIG=%s %s console %s\n' "$VMADM_CONFIG" "$VMADM" "$VM_A"
} >&2
