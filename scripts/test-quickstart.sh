#!/usr/bin/env bash
# The quickstart test: runs scripts/quickstart.sh, then `--remove`, inside a
# network namespace made to look like a host on a documentation network
# (eth0, one end of a veth pair, holding 192.0.2.2/24, default route via 192.0.2.1: the layout on
# which the old quickstart took the gateway's address), and checks
#  - the quickstart succeeds (its two jails ping each other);
#  - afterwards every address, route and link the namespace had is still
#    there unchanged; what is new belongs to what the quickstart reports
#    (its bridge, the jails' host-side veths), and none of it is an
#    address (IPv4 or IPv6, link-local included) or an IPv4 route;
#  - after --remove the namespace is exactly as before, and the pool, pool
#    file, config, record, directories and the VMs' namespaces are gone.
#
#   scripts/test-quickstart.sh [BIN_DIR]
#
# BIN_DIR holds vmadm, imgadm and imgapid (default target/debug, built here
# when missing). Root, zfs-fuse, runc and busybox-static are needed. It
# touches no interface of the host's own namespace; the pool is named
# qst<pid> and lives on a file in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
[ "$(id -u)" = 0 ] || { echo "test-quickstart: needs root" >&2; exit 1; }
BIN=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}
if [ ! -x "$BIN/vmadm" ] || [ ! -x "$BIN/imgapid" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    cargo build -q -p rvmadm -p imgapid --bins
fi
BIN=$(cd "$BIN" && pwd)

NS=rvqs$$
W=$(mktemp -d "${TMPDIR:-/tmp}/rvmadm-qstest.XXXXXX")
POOL=qst$$
export VMADM_CONFIG=$W/etc/vmadm.toml QS_DIR=$W/qs QS_POOL=$POOL QS_POOL_SIZE=512M \
    QS_STATE_DIR=$W/var/vmadm QS_RUN_DIR=$W/run/vmadm QS_BIN_DIR=$BIN
in_ns() { nsenter --net="/run/netns/$NS" -- "$@"; }
quickstart() { in_ns bash scripts/quickstart.sh "$@"; }

fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

finish() {
    # Whatever happened, take the setup away and drop the namespace.
    [ -f "$QS_DIR/created" ] && quickstart --remove >/dev/null 2>&1
    zpool list -H -o name "$POOL" >/dev/null 2>&1 && zpool destroy -f "$POOL"
    ip netns del "$NS" 2>/dev/null
    rm -rf "$W"
}
trap finish EXIT

ip netns add "$NS"
in_ns ip link set dev lo up
# A veth pair inside the namespace (the dummy module may be missing): eth0
# is the "host uplink", its peer stands for the wire.
in_ns ip link add name eth0 type veth peer name wire0
in_ns ip addr add 192.0.2.2/24 dev eth0
in_ns ip link set dev wire0 up
in_ns ip link set dev eth0 up
in_ns ip route add default via 192.0.2.1 dev eth0
# Let IPv6 duplicate address detection finish on the new links, so their
# link-local addresses and routes are in the "before" picture.
for _ in $(seq 100); do
    [ -z "$(in_ns ip -6 addr show tentative)" ] && break
    sleep 0.1
done

# The namespace's network state, one line per fact, sorted.
snapshot() {
    {
        in_ns ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print "link " $2 }'
        in_ns ip -o addr show | awk '{ print "addr " $2, $3, $4 }'
        in_ns ip -4 route show table all | sed 's/^/route4 /'
        in_ns ip -6 route show table all | sed 's/^/route6 /'
    } | sed 's/ *$//' | sort
}
snapshot >"$W/before"

echo "== quickstart in namespace $NS (pool $POOL)"
t0=$(date +%s.%N)
if quickstart >"$W/qs.out" 2>&1; then
    ok "quickstart succeeded (its jails pinged each other) in $(echo "$(date +%s.%N) - $t0" | bc) s"
else
    bad "quickstart failed:"; tail -n 30 "$W/qs.out"
fi
grep -q '2 packets transmitted, 2 packets received' "$W/qs.out" \
    && ok "ping between the jails answered" || bad "no ping answer in the output"
snapshot >"$W/after"

RECORD=$QS_DIR/created
BRIDGE=$(awk '$1 == "bridge" { print $2 }' "$RECORD" 2>/dev/null)
VMS=$(awk '$1 == "vm" { print $2 }' "$RECORD" 2>/dev/null)
[ -n "$BRIDGE" ] && [ "$(echo "$VMS" | wc -w)" = 2 ] && ok "record names bridge $BRIDGE and two VMs" \
    || bad "record incomplete: $(cat "$RECORD" 2>/dev/null)"
for what in "bridge       $BRIDGE" "pool         $POOL" "config       $VMADM_CONFIG" "pool file    $QS_DIR/$POOL.zpool"; do
    grep -qF "$what" "$W/qs.out" && ok "reported: $what" || bad "not reported: $what"
done
for vm in $VMS; do
    grep -q "VM           $vm" "$W/qs.out" && ok "reported VM $vm" || bad "VM $vm not reported"
done

# The jails' host-side links carry the alias vmadm:<uuid> (vmadm sets it
# so teardown can match them exactly); collect those of the reported VMs.
vm_links=
for vm in $VMS; do
    vm_links="$vm_links $(in_ns ip -o link show | awk -F': ' -v a="alias vmadm:$vm" \
        'index($0, a) { sub(/@.*/, "", $2); print $2 }' | tr '\n' ' ')"
done
[ -n "${vm_links// /}" ] && ok "the VMs' host-side links:$vm_links" || bad "no host-side link carries a VM's alias"
created_dev() {
    local dev=$1 l
    [ "$dev" = "$BRIDGE" ] && return 0
    for l in $vm_links; do [ "$dev" = "$l" ] && return 0; done
    return 1
}
dev_of() { # the interface a snapshot line is about
    case $1 in
        link\ * | addr\ *) echo "$1" | awk '{ print $2 }' ;;
        *) echo "$1" | sed -n 's/.* dev \([^ ]*\).*/\1/p' ;;
    esac
}
missing=$(comm -23 "$W/before" "$W/after")
[ -z "$missing" ] && ok "every address, route and link from before is unchanged" \
    || bad "changed or gone after the quickstart: $missing"
while IFS= read -r line; do
    [ -n "$line" ] || continue
    dev=$(dev_of "$line")
    if ! created_dev "$dev"; then
        bad "new, and not on anything the quickstart reported: $line"
    elif [[ $line == addr* && $dev == "$BRIDGE" ]]; then
        bad "the bridge has an address: $line"
    elif [[ $line == addr*inet\ * || $line == route4* ]]; then
        bad "IPv4 address or route on the host side: $line"
    elif [[ $line == addr* ]]; then
        bad "address on a port: $line"
    elif [[ $line == route6* && ! $line =~ ^route6\ (fe80::/64|local\ fe80:|multicast\ ff00::/8) ]]; then
        bad "IPv6 route beyond the link: $line"
    fi
done < <(comm -13 "$W/before" "$W/after")
echo "new after the quickstart:"; comm -13 "$W/before" "$W/after" | sed 's/^/     /'
sed -n '/^== created/,$p' "$W/qs.out"

echo "== quickstart --remove"
if quickstart --remove >"$W/rm.out" 2>&1; then ok "--remove succeeded"; else bad "--remove failed:"; tail -n 20 "$W/rm.out"; fi
snapshot >"$W/removed"
if cmp -s "$W/before" "$W/removed"; then
    ok "the namespace's links, addresses and routes are exactly as before"
else
    bad "namespace differs after --remove:"; diff "$W/before" "$W/removed" || true
fi
zpool list -H -o name "$POOL" >/dev/null 2>&1 && bad "pool $POOL still exists" || ok "pool $POOL gone"
for p in "$QS_DIR" "$VMADM_CONFIG" "$QS_STATE_DIR" "$QS_RUN_DIR" "/$POOL"; do
    [ -e "$p" ] && bad "$p still exists" || ok "$p gone"
done
for vm in $VMS; do
    [ -e "/run/netns/vmadm-$vm" ] && bad "netns of VM $vm left" || ok "VM $vm's namespace gone"
done

if [ "$fails" = 0 ]; then echo "quickstart: all checks passed"; else echo "quickstart: $fails check(s) failed"; exit 1; fi
