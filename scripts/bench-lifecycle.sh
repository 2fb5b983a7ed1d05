#!/usr/bin/env bash
# Lifecycle benchmark: vmadm (release build, Linux driver) side by side with
# bare runc doing the same work, in one run on the same machine, using the
# shared peer scripts (../shared/bench-peers) for the peers and their helpers.
#
#   sudo bash scripts/bench-lifecycle.sh [runc|all]
#
# `runc` (default) runs bench-peers/20-oci-runtimes.sh runc; `all` adds the
# LXC and podman scripts (several minutes more). Measured for vmadm, each a
# whole CLI process timed from outside: create (zfs clone + record), start,
# stop -F (SIGKILL + teardown), stop (SIGTERM to an init that exits on it),
# delete (stopped: record + zfs destroy), and list with 10 and 100 running
# jails. Jails without NICs do the same work as the runc bundle (fresh
# namespaces, cgroups, pivot_root); a second start/stop series gives each jail
# one NIC (netns + veth on a bridge, addresses, route).
#
# Everything vmadm does happens in a private network namespace (`unshare -n`)
# on a throwaway file-backed pool; all of it is removed at exit.
# Env: RUNS (hyperfine repetitions, default 30), RUNS_LC (lifecycle loop, 20),
#      PEERS_DIR (default: ../shared/bench-peers next to the repo).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$(cd "$REPO/../shared/bench-peers" 2>/dev/null && pwd)}
[ -f "$PEERS_DIR/common.sh" ] || { echo "bench-lifecycle: bench-peers not found (set PEERS_DIR)" >&2; exit 1; }
export PEERS=${PEERS:-/tmp/rvmadm-bench}
export RESULTS=${RESULTS:-$PEERS/results.tsv}
export RUNS=${RUNS:-30} RUNS_LC=${RUNS_LC:-20}
# shellcheck source=/dev/null
. "$PEERS_DIR/common.sh"
need_root

IMG=11111111-2222-4333-8444-555555555555

vmadm_pass() { # runs inside `unshare -n`: our private "host" network
  ip link set lo up
  # Globals, not locals: the EXIT trap's teardown runs after this function.
  W=$(mktemp -d /tmp/rvmadm-bench.XXXXXX)
  POOL=rvbench$$ VMADM=$TARGET/vmadm
  local VER
  VER="vmadm $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo dev)"
  cat > "$W/vmadm.toml" <<T
pool = "$POOL"
state_dir = "$W/state"
image_dir = "$W/images"
run_dir = "$W/run"
runtime_root = "$W/run/runc"
driver = "linux"
create_bridges = true
[networks]
admin = "benchbr0"
T
  export VMADM_CONFIG=$W/vmadm.toml
  local -a ALL=()
  teardown() {
    local u
    for u in $("$VMADM" list -H -o uuid 2>/dev/null); do "$VMADM" delete "$u" >/dev/null 2>&1; done
    # zfs-fuse answers "pool is busy" to the first destroy of a used pool.
    local k
    for k in 1 2 3 4 5; do zpool destroy -f "$POOL" 2>/dev/null && break; sleep 1; done
    zpool list -H -o name "$POOL" >/dev/null 2>&1 && log "pool $POOL is left: zpool destroy -f $POOL" || rm -rf "$W"
  }
  trap teardown EXIT
  truncate -s 3G "$W/pool.img"
  zpool create -f -m "$W/mnt" "$POOL" "$W/pool.img" || { log "zpool create failed"; return 1; }
  zfs create "$POOL/$IMG"
  build_rootfs
  # The SmartOS layout: the jail's tree under root/ of the image dataset.
  mkdir -m 755 "$W/mnt/$IMG/root"
  cp -a "$ROOTFS/." "$W/mnt/$IMG/root/"
  # The same idle init the peers' LXC runs: exits on SIGTERM. The rootfs's
  # sbin/init is an absolute symlink to /bin/busybox: remove it first, or the
  # copy would follow it and overwrite the host's busybox.
  rm -f "$W/mnt/$IMG/root/sbin/init"
  cp "$ROOTFS/sbin/init.sh" "$W/mnt/$IMG/root/sbin/init"
  zfs snapshot "$POOL/$IMG@final"
  ip link add benchbr0 type bridge && ip addr add 192.0.2.1/24 dev benchbr0 && ip link set benchbr0 up

  local base='"brand":"jail","image_uuid":"'$IMG'","max_physical_memory":64,"autoboot":false'
  local nonic="{$base}"
  mkuuid() { cat /proc/sys/kernel/random/uuid; }
  net_payload() { # index -> payload with one NIC
    printf '{%s,"nics":[{"nic_tag":"admin","ips":["198.51.100.%d/24"],"gateways":["198.51.100.1"]}]}' "$base" $(($1 % 250 + 2))
  }

  # 1. lifecycle, phase by phase, no NIC (the same work as the runc bundle)
  local f=$PEERS/vm.lc i u t0 t1 t2 t3 t4 t5 ph
  rm -f "$f".*
  for ((i = 0; i < RUNS_LC; i++)); do
    u=$(mkuuid)
    t0=${EPOCHREALTIME/./}
    echo "${nonic%\}},\"uuid\":\"$u\"}" | "$VMADM" create >/dev/null 2>>"$f.err" || log "create failed"
    t1=${EPOCHREALTIME/./}
    "$VMADM" start "$u" 2>>"$f.err" || log "start $u failed: $(tail -1 "$f.err")"
    t2=${EPOCHREALTIME/./}
    "$VMADM" stop -F "$u" 2>>"$f.err" || log "stop -F failed"
    t3=${EPOCHREALTIME/./}
    "$VMADM" start "$u" 2>>"$f.err" || log "start failed"
    t4=${EPOCHREALTIME/./}
    "$VMADM" stop "$u" 2>>"$f.err" || log "stop failed"
    t5=${EPOCHREALTIME/./}
    "$VMADM" delete "$u" 2>>"$f.err" || log "delete failed"
    t6=${EPOCHREALTIME/./}
    echo $(((t1 - t0) * 1000)) >> "$f.create"
    echo $(((t2 - t1) * 1000)) >> "$f.start"
    echo $(((t3 - t2) * 1000)) >> "$f.stopF"
    echo $(((t5 - t4) * 1000)) >> "$f.stop"
    echo $(((t6 - t5) * 1000)) >> "$f.delete"
  done
  for ph in create start stopF stop delete; do
    read -r med mn mx n < <(stats_ms "$f.$ph")
    record "vmadm $ph (no NIC)" "$VER" "$n" "$med" "$mn" "$mx" "vmadm $ph UUID"
  done
  # 2. start / stop -F with one NIC (netns, veth on a bridge, address, route)
  rm -f "$f".*
  for ((i = 0; i < RUNS_LC; i++)); do
    u=$(mkuuid)
    net_payload "$i" | sed "s/^{/{\"uuid\":\"$u\",/" | "$VMADM" create >/dev/null 2>>"$f.err" || log "create (nic) failed"
    t1=${EPOCHREALTIME/./}
    "$VMADM" start "$u" 2>>"$f.err" || log "start (nic) failed: $(tail -1 "$f.err")"
    t2=${EPOCHREALTIME/./}
    "$VMADM" stop -F "$u" 2>>"$f.err" || log "stop -F (nic) failed"
    t3=${EPOCHREALTIME/./}
    "$VMADM" delete "$u" 2>>"$f.err"
    echo $(((t2 - t1) * 1000)) >> "$f.start"
    echo $(((t3 - t2) * 1000)) >> "$f.stopF"
  done
  for ph in start stopF; do
    read -r med mn mx n < <(stats_ms "$f.$ph")
    record "vmadm $ph (1 NIC)" "$VER" "$n" "$med" "$mn" "$mx" "vmadm $ph UUID"
  done
  grep -v "^Successfully" "$f.err" 2>/dev/null | sort -u | head -3 | while read -r l; do log "vmadm error: $l"; done
  rm -f "$f".*

  # 3. list with 0, 10, 100 running jails (each with a NIC)
  local have=0 want
  for want in 0 10 100; do
    t0=${EPOCHREALTIME/./}
    for ((i = have; i < want; i++)); do
      u=$(mkuuid)
      net_payload "$i" | sed "s/^{/{\"uuid\":\"$u\",/" | "$VMADM" create >/dev/null 2>&1 && "$VMADM" start "$u" 2>/dev/null || log "jail $i failed"
    done
    t1=${EPOCHREALTIME/./}
    [ "$want" -gt "$have" ] && log "vmadm: created+started $((want - have)) jails in $(((t1 - t0) / 1000)) ms"
    have=$want
    local cnt; cnt=$("$VMADM" list -H -o state | grep -c running)
    [ "$cnt" = "$want" ] || log "expected $want running jails, vmadm list shows $cnt"
    hf "vmadm list ($want containers)" "$VER" "$RUNS" "$VMADM list"
    hf "vmadm list -p ($want containers)" "$VER" "$RUNS" "$VMADM list -p -H -o uuid,state"
  done
  t0=${EPOCHREALTIME/./}
  for u in $("$VMADM" list -H -o uuid); do "$VMADM" delete "$u" >/dev/null 2>&1; done
  t1=${EPOCHREALTIME/./}
  log "vmadm: delete of $have running jails took $(((t1 - t0) / 1000)) ms"
}

if [ "${1:-}" = "--inner-vmadm" ]; then
  TARGET=$2
  vmadm_pass
  exit $?
fi

install_pkgs hyperfine jq runc busybox-static iproute2 util-linux
mkdir -p "$PEERS"; : > "$RESULTS"
log "building vmadm (release)"
(cd "$REPO" && cargo build --release -q -p rvmadm --bin vmadm) || exit 1
TARGET=${CARGO_TARGET_DIR:-$REPO/target}/release

log "== peers ($PEERS_DIR)"
bash "$PEERS_DIR/20-oci-runtimes.sh" runc || log "20-oci-runtimes.sh exited with $?"
if [ "${1:-runc}" = all ]; then
  bash "$PEERS_DIR/30-lxc.sh" || log "30-lxc.sh exited with $?"
  bash "$PEERS_DIR/40-podman.sh" || log "40-podman.sh exited with $?"
fi
log "== vmadm"
unshare -n bash "$0" --inner-vmadm "$TARGET" || log "vmadm pass exited with $?"

# Side by side: medians (ms) and vmadm/peer ratios.
med() { awk -F'\t' -v op="$1" '$1 == op {print $4; exit}' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
sum() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { if (a == "" || b == "" || c == "") print ""; else printf "%.3f", a + b + c }'; }
runc_stop=$(sum "$(med 'runc sleep-container kill')" "$(med 'runc sleep-container stopwait')" "$(med 'runc sleep-container delete')")
{
  echo
  echo "| operation | vmadm ms | runc ms (same work) | ratio |"
  echo "|---|---:|---:|---:|"
  row() { printf '| %s | %s | %s | %s |\n' "$1" "${2:--}" "${3:--}" "$(ratio "$2" "$3")"; }
  row "create (vmadm: zfs clone + record; runc: create)" "$(med 'vmadm create (no NIC)')" "$(med 'runc sleep-container create')"
  row "start, no NIC (runc: create+start)" "$(med 'vmadm start (no NIC)')" "$(med 'runc create+start (sleep)')"
  row "start, 1 NIC (runc: create+start, no NIC)" "$(med 'vmadm start (1 NIC)')" "$(med 'runc create+start (sleep)')"
  row "stop -F, no NIC (runc: kill KILL + wait + delete)" "$(med 'vmadm stopF (no NIC)')" "$runc_stop"
  row "stop -F, 1 NIC (runc: kill KILL + wait + delete)" "$(med 'vmadm stopF (1 NIC)')" "$runc_stop"
  row "stop, SIGTERM to init (runc: kill KILL + wait + delete)" "$(med 'vmadm stop (no NIC)')" "$runc_stop"
  row "delete stopped (vmadm: + zfs destroy; runc: delete)" "$(med 'vmadm delete (no NIC)')" "$(med 'runc sleep-container delete')"
  for n in 0 10 100; do
    v=$(med "vmadm list ($n containers)")
    for peer in "runc list ($n containers)" "crun list ($n containers)" "lxc-ls --fancy ($n running +1 stopped)" "lxc-ls -1 ($n running +1 stopped)" "podman ps -a ($n containers)"; do
      p=$(med "$peer")
      [ -n "$p" ] && row "list $n running: vmadm list vs $peer" "$v" "$p"
    done
  done
  echo
  echo "All rows: $RESULTS"
} | tee "$PEERS/summary.md"
