#!/usr/bin/env bash
# Whole-command latency of `vmadm list`, `vmadm lookup -j` and `vmadm get`
# with 10, 100 and 1000 VMs, next to the floor: `cat` of the same number of
# small JSON files (the record files themselves). Each command is timed as a
# whole process by hyperfine (no shell, warm-ups first); medians in ms.
#
#   sudo bash scripts/bench-vmadm.sh            # NS="10 100 1000" DRIVER=none
#   NS="10 100" DRIVER=linux sudo -E bash scripts/bench-vmadm.sh
#
# DRIVER=linux measures with the Linux driver's one-pass state query (the
# VMs exist but are not running); DRIVER=none measures records alone.
# Results: a markdown table on stdout, raw hyperfine JSON in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
NS=${NS:-10 100 1000}
DRIVER=${DRIVER:-none}
RUNS=${RUNS:-30}
OUT=${OUT:-/tmp/rvmadm-bench-vmadm}
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null; }
bash scripts/install-deps.sh >/dev/null
cargo build --release -q -p rvmadm
VMADM=${CARGO_TARGET_DIR:-$PWD/target}/release/vmadm

WORK=$(mktemp -d /tmp/rvmadm-bench.XXXXXX)
POOL=rvbench$$
IMAGE=b0b0b0b0-0000-4000-8000-000000000001
cleanup() {
  # zfs-fuse may call a pool with many fresh mounts busy for a while.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    zpool destroy -f "$POOL" 2>/dev/null && break
    zfs list -H -o name -r "$POOL" 2>/dev/null | sort -r | while read -r ds; do
      zfs unmount -f "$ds" 2>/dev/null || true
    done
    sleep 1
  done
  zpool list "$POOL" >/dev/null 2>&1 && echo "bench: could not destroy pool $POOL" >&2
  rm -rf "$WORK"
}
trap cleanup EXIT
truncate -s 2G "$WORK/pool.img"
zpool create -f -m "$WORK/mnt" "$POOL" "$WORK/pool.img"
zfs create "$POOL/$IMAGE"
# An empty zone root: create refuses a dataset without root/.
mkdir "$WORK/mnt/$IMAGE/root"
zfs snapshot "$POOL/$IMAGE@final"
cat > "$WORK/vmadm.toml" <<EOF
pool = "$POOL"
state_dir = "$WORK/state"
image_dir = "$WORK/images"
run_dir = "$WORK/run"
runtime_root = "$WORK/run/runc"
driver = "$DRIVER"
EOF
export VMADM_CONFIG=$WORK/vmadm.toml
mkdir -p "$OUT"

have=0
echo "| N | vmadm list | vmadm lookup -j | vmadm get | cat N records (floor) | list / floor |"
echo "|---|---|---|---|---|---|"
for n in $NS; do
  while [ "$have" -lt "$n" ]; do
    have=$((have + 1))
    printf '{"brand":"jail","image_uuid":"%s","alias":"vm%04d","autoboot":false,"ram":%d,"nics":[{"nic_tag":"admin","ips":["192.0.2.%d/24"]}],"tags":{"n":%d}}' \
      "$IMAGE" "$have" $(( (have % 4 + 1) * 256 )) $(( have % 250 + 1 )) "$have" \
      | "$VMADM" create 2>/dev/null
  done
  one=$("$VMADM" lookup alias=vm0001)
  mapfile -t files < <(ls "$WORK"/state/vms/*.json)
  hyperfine -N -w 3 -r "$RUNS" --export-json "$OUT/n$n.json" \
    "$VMADM list" "$VMADM lookup -j" "$VMADM get $one" "cat ${files[*]}" >/dev/null 2>&1
  python3 - "$OUT/n$n.json" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
m = [x["median"] * 1000 for x in r]
print(f"| {sys.argv[2]} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]:.2f} | {m[0]/m[3]:.2f} |")
PY
done
