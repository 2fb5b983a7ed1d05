#!/usr/bin/env bash
# Speed of every vmadm verb next to its floor, from one run, as one markdown
# table (docs/performance.md keeps the latest). Floors are the bare tools
# doing the same work: `zfs clone` / `zfs destroy` of the same snapshot,
# `runc create` + `runc start` of the same rootfs, `runc exec` of
# `/bin/true` in it, starting `/bin/true`, `cat` of the same record files.
#
#   flock /tmp/rvmadm-zfs.lock sudo -E bash scripts/bench-speed.sh
#
# It uses zfs-fuse (a throwaway pool on a file, destroyed at exit), so run it
# under the shared zfs lock. Everything runs inside a private network
# namespace (`unshare -n`): the bridge, veths and addresses never touch the
# host's interfaces.
#
# Env: VMADM   the binary to measure (default: target/release/vmadm, built
#              with `cargo vmadm-release`, the static non-PIE build)
#      BEFORE  an older vmadm binary measured in the same run (a column)
#      RUNS    hyperfine runs for get/list (30); RUNS_LC loop runs for
#              create/delete/start (15); BIG records for the big list (10000)
#      PEERS_DIR  ../shared/bench-peers (its common.sh: rootfs, stats)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$(cd "$REPO/../shared/bench-peers" 2>/dev/null && pwd)}
[ -f "$PEERS_DIR/common.sh" ] || { echo "bench-speed: bench-peers not found (set PEERS_DIR)" >&2; exit 1; }
export PEERS=${PEERS:-/tmp/rvmadm-bench-speed}
export RESULTS=${RESULTS:-$PEERS/results.tsv}
export RUNS=${RUNS:-30} RUNS_LC=${RUNS_LC:-15} BIG=${BIG:-10000}
# shellcheck source=/dev/null
. "$PEERS_DIR/common.sh"
need_root
export VMADM=${VMADM:-${CARGO_TARGET_DIR:-$REPO/target}/release/vmadm}
export BEFORE=${BEFORE:-}
IMG=11111111-2222-4333-8444-555555555555

inner() {
  ip link set lo up
  W=$(mktemp -d /tmp/rvmadm-speed.XXXXXX)
  POOL=rvspeed$$
  teardown() {
    local u
    for u in $("$VMADM" list -H -o uuid 2>/dev/null); do "$VMADM" delete "$u" >/dev/null 2>&1; done
    runc --root "$W/runc-floor" list -q 2>/dev/null | while read -r id; do
      runc --root "$W/runc-floor" kill "$id" KILL 2>/dev/null; sleep 0.05
      runc --root "$W/runc-floor" delete -f "$id" >/dev/null 2>&1
    done
    local k
    for k in 1 2 3 4 5 6 7 8; do zpool destroy -f "$POOL" 2>/dev/null && break; sleep 1; done
    zpool list -H -o name "$POOL" >/dev/null 2>&1 && log "pool $POOL is left: zpool destroy -f $POOL" || rm -rf "$W"
  }
  trap teardown EXIT
  # Measure installed copies, as `install` writes them: exec'ing the file
  # the linker wrote into target/ costs ~0.3 ms more per start on this
  # ext4 host (its page cache pages come from the linker's scattered
  # writes; a copy is written, and cached, in one sequential pass). The
  # teardown above finds them through $VMADM, which now names the copy.
  mkdir -p "$W/bin"
  install -m 0755 "$VMADM" "$W/bin/vmadm" && VMADM=$W/bin/vmadm
  if [ -n "$BEFORE" ]; then install -m 0755 "$BEFORE" "$W/bin/vmadm-before" && BEFORE=$W/bin/vmadm-before; fi
  truncate -s 2G "$W/pool.img"
  zpool create -f -m "$W/mnt" "$POOL" "$W/pool.img" >/dev/null || { log "zpool create failed"; return 1; }
  build_rootfs
  zfs create "$POOL/$IMG"
  # The tree under root/ (SmartOS layout; vmadm refuses an image with a
  # tree at its top as well).
  local d
  for d in "$W/mnt/$IMG/root"; do
    mkdir -p "$d" && tar -C "$d" -xf "$ROOTFS_TAR"
    # The same idle init the peers use (exits on SIGTERM); sbin/init is a
    # symlink to /bin/busybox in the tarball: replace the link, not its target.
    rm -f "$d/sbin/init" && cp "$ROOTFS/sbin/init.sh" "$d/sbin/init"
  done
  zfs snapshot "$POOL/$IMG@final"
  ip link add speedbr0 type bridge && ip addr add 192.0.2.1/24 dev speedbr0 && ip link set speedbr0 up
  cat > "$W/vmadm.toml" <<T
pool = "$POOL"
state_dir = "$W/state"
image_dir = "$W/images"
run_dir = "$W/run"
runtime_root = "$W/run/runc"
driver = "linux"
[networks]
admin = "speedbr0"
T
  export VMADM_CONFIG=$W/vmadm.toml
  local base='"brand":"jail","image_uuid":"'$IMG'","max_physical_memory":64,"autoboot":false'
  mkuuid() { cat /proc/sys/kernel/random/uuid; }
  payload() { # uuid [nic index] [autoboot]
    local nic=""
    [ -n "${2:-}" ] && nic=$(printf ',"nics":[{"nic_tag":"admin","ips":["198.51.100.%d/24"],"gateways":["198.51.100.1"]}]' $(($2 % 250 + 2)))
    printf '{%s,"uuid":"%s"%s}' "${base/\"autoboot\":false/\"autoboot\":${3:-false}}" "$1" "$nic"
  }
  us() { echo "${EPOCHREALTIME/./}"; }
  # loop_stat name file: records the median of the microsecond samples
  loop_stat() {
    local med mn mx n
    sed 's/$/000/' "$2" > "$2.ns"
    read -r med mn mx n < <(stats_ms "$2.ns")
    record "$1" loop "$n" "$med" "$mn" "$mx" "timed loop"
    rm -f "$2" "$2.ns"
  }
  local tools=("after:$VMADM")
  [ -n "$BEFORE" ] && tools=("before:$BEFORE" "${tools[@]}")

  # -- create (no boot) and delete, next to a bare clone / destroy. One
  # round runs each tool and each floor once, so load that changes during
  # the run weighs on all columns alike.
  local i u t0 t1 tag bin busy=0 k
  for ((i = 0; i < RUNS_LC; i++)); do
    for tb in "${tools[@]}"; do
      tag=${tb%%:*} bin=${tb#*:}
      u=$(mkuuid)
      # The payload in a file first: the timed part is vmadm alone, as the
      # floor's is zfs alone (a pipe would time a forked shell too).
      payload "$u" > "$W/payload.json"
      t0=$(us); "$bin" create -f "$W/payload.json" 2>>"$W/err" >/dev/null || log "$tag create failed: $(tail -1 "$W/err")"; t1=$(us)
      echo $((t1 - t0)) >> "$W/create.$tag"
      t0=$(us); "$bin" delete "$u" 2>>"$W/err" || log "$tag delete failed: $(tail -1 "$W/err")"; t1=$(us)
      echo $((t1 - t0)) >> "$W/delete.$tag"
    done
    # A bare clone (destroyed untimed), then the same clone vmadm makes
    # (its properties, the payload's default 10 GiB quota, set at creation).
    t0=$(us); zfs clone "$POOL/$IMG@final" "$POOL/floor$i" || log "floor clone failed"; t1=$(us)
    echo $((t1 - t0)) >> "$W/create.floor"
    for ((k = 0; k < 50; k++)); do zfs destroy "$POOL/floor$i" 2>/dev/null && break; done
    t0=$(us); zfs clone -o devices=off -o quota=10G "$POOL/$IMG@final" "$POOL/floorp$i" || log "floor clone -o failed"; t1=$(us)
    echo $((t1 - t0)) >> "$W/createp.floor"
    # The delete floor destroys that dataset as vmadm's create leaves one
    # (zonepath made 0700, root/ looked up, untimed). zfs-fuse says "busy"
    # to the first destroy of a mounted dataset now and then: the floor
    # retries at once, as vmadm does.
    chmod 0700 "$W/mnt/floorp$i" && ls "$W/mnt/floorp$i/root" >/dev/null
    t0=$(us)
    for ((k = 0; k < 50; k++)); do zfs destroy -r "$POOL/floorp$i" 2>/dev/null && break; busy=$((busy + 1)); done
    t1=$(us)
    echo $((t1 - t0)) >> "$W/delete.floor"
  done
  for tb in "${tools[@]}"; do
    tag=${tb%%:*}
    loop_stat "create $tag" "$W/create.$tag"
    loop_stat "delete $tag" "$W/delete.$tag"
  done
  log "floor: $busy busy answers in $RUNS_LC destroys"
  loop_stat "create floor" "$W/create.floor"
  loop_stat "createp floor" "$W/createp.floor"
  loop_stat "delete floor" "$W/delete.floor"

  # -- start without and with a NIC, next to runc create + start of the
  # same rootfs, no NIC: like each VM's, a fresh clone of the image made
  # (untimed) just before, so both boot from a dataset zfs-fuse has not
  # served yet (a root booted over and over is answered from caches).
  mkdir -p "$W/bundle"
  (cd "$W/bundle" && runc spec)
  jq --arg r "$W/mnt/runcroot/root" '.root.path=$r | .process.terminal=false | .process.args=["/sbin/init"]' \
    "$W/bundle/config.json" > "$W/bundle/c.json" && mv "$W/bundle/c.json" "$W/bundle/config.json"
  # One round measures the floor and every tool's start, start with a NIC
  # and create -> running in turn, so load that comes and goes on a shared
  # host weighs on all of them alike.
  local nic
  for ((i = 0; i < RUNS_LC; i++)); do
    zfs clone "$POOL/$IMG@final" "$POOL/runcroot" || log "floor root clone failed"
    t0=$(us)
    runc --root "$W/runc-floor" create --bundle "$W/bundle" "floor$i" </dev/null >/dev/null 2>>"$W/err" &&
      runc --root "$W/runc-floor" start "floor$i" 2>>"$W/err" || log "runc floor failed: $(tail -1 "$W/err")"
    t1=$(us)
    echo $((t1 - t0)) >> "$W/start.floor"
    # One command in the running container, as `vmadm exec` runs one; after
    # a pause, as an exec usually comes long after the start (right after
    # it, the start's cgroup move has left the kernel's lock warm, and the
    # exec would not show what it costs on its own).
    sleep 0.1
    t0=$(us); runc --root "$W/runc-floor" exec "floor$i" /bin/true </dev/null 2>>"$W/err" || log "runc exec floor failed"; t1=$(us)
    echo $((t1 - t0)) >> "$W/exec.floor"
    runc --root "$W/runc-floor" kill "floor$i" KILL 2>/dev/null
    for ((k = 0; k < 200; k++)); do runc --root "$W/runc-floor" delete "floor$i" 2>/dev/null && break; sleep 0.01; done
    for ((k = 0; k < 50; k++)); do zfs destroy "$POOL/runcroot" 2>/dev/null && break; sleep 0.02; done
    for tb in "${tools[@]}"; do
      tag=${tb%%:*} bin=${tb#*:}
      for nic in "" 1; do
        u=$(mkuuid)
        payload "$u" ${nic:+$i} | "$bin" create 2>>"$W/err" >/dev/null || log "$tag create failed"
        t0=$(us); "$bin" start "$u" 2>>"$W/err" || log "$tag start failed: $(tail -1 "$W/err")"; t1=$(us)
        echo $((t1 - t0)) >> "$W/start$nic.$tag"
        if [ -z "$nic" ]; then
          sleep 0.1
          t0=$(us); "$bin" exec "$u" -- /bin/true </dev/null 2>>"$W/err" || log "$tag exec failed: $(tail -1 "$W/err")"; t1=$(us)
          echo $((t1 - t0)) >> "$W/exec.$tag"
        fi
        "$bin" stop -F "$u" 2>>"$W/err"; "$bin" delete "$u" 2>>"$W/err"
      done
      # create -> running with one NIC (autoboot)
      u=$(mkuuid)
      t0=$(us); payload "$u" "$i" true | "$bin" create 2>>"$W/err" >/dev/null || log "$tag create+boot failed: $(tail -1 "$W/err")"; t1=$(us)
      echo $((t1 - t0)) >> "$W/boot.$tag"
      "$bin" stop -F "$u" 2>>"$W/err"; "$bin" delete "$u" 2>>"$W/err"
    done
  done
  loop_stat "start floor" "$W/start.floor"
  loop_stat "exec floor" "$W/exec.floor"
  for tb in "${tools[@]}"; do
    tag=${tb%%:*}
    loop_stat "start $tag" "$W/start.$tag"
    loop_stat "exec $tag" "$W/exec.$tag"
    loop_stat "start1 $tag" "$W/start1.$tag"
    loop_stat "boot $tag" "$W/boot.$tag"
  done

  # -- get and list with few VMs (10, stopped), next to /bin/true
  local one
  for ((i = 0; i < 10; i++)); do
    u=$(mkuuid); payload "$u" "$i" | "$VMADM" create 2>/dev/null >/dev/null
    one=$u
  done
  sleep 2.5 # older than the list index's racy window
  hf "true floor" floor "$RUNS" "/bin/true"
  for tb in "${tools[@]}"; do
    tag=${tb%%:*} bin=${tb#*:}
    hf "get $tag" "$tag" "$RUNS" "$bin get $one"
    hf "list $tag" "$tag" "$RUNS" "$bin list"
  done

  # -- list of BIG records, written directly (zfs-fuse will not mount
  # that many datasets), next to `cat` of the same files
  local big=$W/big
  mkdir -p "$big/state/vms" "$big/run/linux"
  sed -e "s|$W/state|$big/state|" -e "s|$W/run|$big/run|" "$W/vmadm.toml" > "$big/vmadm.toml"
  python3 - "$W/state/vms/$one.json" "$big/state/vms" "$BIG" <<'PY'
import json, sys, uuid
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
doc = json.load(open(src))
old = doc["vm"]["uuid"]
text = json.dumps(doc, indent=2)
for i in range(n):
    u = str(uuid.uuid4())
    t = text.replace(old, u)
    t = t.replace('"max_physical_memory": 64', '"max_physical_memory": %d' % (64 * (i % 8 + 1)))
    with open("%s/%s.json" % (dst, u), "w") as f:
        f.write(t + "\n")
PY
  sleep 2.5
  hfs "cat $BIG floor" floor "$RUNS" "cat $big/state/vms/*.json >/dev/null"
  for tb in "${tools[@]}"; do
    tag=${tb%%:*} bin=${tb#*:}
    VMADM_CONFIG=$big/vmadm.toml hf "list$BIG $tag" "$tag" "$RUNS" "$bin list"
  done
  grep -v "^Successfully" "$W/err" 2>/dev/null | sort | uniq -c | sort -rn | head -5 | while read -r l; do log "stderr seen: $l"; done
  return 0
}

if [ "${1:-}" = --inner ]; then
  inner
  exit $?
fi

install_pkgs hyperfine jq runc busybox-static iproute2 util-linux python3
[ -x "$VMADM" ] || { log "no $VMADM: build it with \`cargo vmadm-release\`"; exit 1; }
[ -x "$(dirname "$VMADM")/imgadm" ] || log "note: no imgadm beside $VMADM (vmadm images needs it; not measured here)"
mkdir -p "$PEERS"; : > "$RESULTS"
unshare -n bash "$0" --inner || log "inner pass exited with $?"

med() { awk -F'\t' -v op="$1" '$1 == op {print $4; exit}' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print ""; else printf "%.3f", a - b }'; }
{
  echo
  if [ -n "$BEFORE" ]; then
    echo "| verb | before ms | today ms | floor | floor ms | ratio today/floor | ratio before/floor |"
    echo "|---|---:|---:|---|---:|---:|---:|"
  else
    echo "| verb | today ms | floor | floor ms | ratio |"
    echo "|---|---:|---|---:|---:|"
  fi
  row() { # label key floor-label floor-key
    local a f b
    a=$(med "$2 after") f=$(med "$4") b=$(med "$2 before")
    if [ -n "$BEFORE" ]; then
      printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "${b:--}" "${a:--}" "$3" "${f:--}" "$(ratio "$a" "$f")" "$(ratio "$b" "$f")"
    else
      printf '| %s | %s | %s | %s | %s |\n' "$1" "${a:--}" "$3" "${f:--}" "$(ratio "$a" "$f")"
    fi
  }
  row "get (10 VMs)" get "start /bin/true" "true floor"
  row "list (10 VMs)" list "start /bin/true" "true floor"
  row "create, no boot" create "one \`zfs clone\`" "create floor"
  row "create, no boot" create "\`zfs clone -o devices=off -o quota=…\`" "createp floor"
  row "delete (stopped)" delete "\`zfs destroy\` (busy retried at once)" "delete floor"
  row "start, no NIC" start "\`runc create\` + \`runc start\`" "start floor"
  row "start, 1 NIC" start1 "\`runc create\` + \`runc start\` (no NIC)" "start floor"
  row "create → running, 1 NIC" boot "\`runc create\` + \`runc start\` (no NIC)" "start floor"
  row "exec of /bin/true (no NIC)" exec "\`runc exec\` of /bin/true" "exec floor"
  row "list ($BIG VMs)" "list$BIG" "\`cat\` of the $BIG records" "cat $BIG floor"
  echo
  echo "Medians of one run (hyperfine -N for get/list, $RUNS runs; timed loops of $RUNS_LC for the rest)."
  echo "All rows: $RESULTS"
} | tee "$PEERS/summary.md"
