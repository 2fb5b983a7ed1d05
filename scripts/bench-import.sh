#!/usr/bin/env bash
# Import throughput of `imgadm import` against the shell pipeline a sysadmin
# would write for the same file from the same loopback server:
#
#   curl URL | tee >(sha1sum) | gunzip | zfs receive POOL/x
#
# plus peak RSS of the import (/usr/bin/time -v). Builds a ~250 MB
# uncompressed / 200 MB+ gzip image in a scratch pool on a sparse file,
# serves it with a small Python HTTP server on 127.0.0.1, runs ROUNDS rounds
# of each (alternating) and prints medians and the ratio.
#
#   scripts/bench-import.sh [ROUNDS]      (default 3)
#
# Env: CARGO_TARGET_DIR (where the release imgadm is built), MB (payload
# size in MiB, default 270).
set -euo pipefail
ROUNDS=${1:-3}
MB=${MB:-270}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
for tool in curl gunzip sha1sum zfs zpool python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench-import: missing $tool" >&2; exit 1; }
done

echo "bench-import: building release imgadm" >&2
(cd "$HERE" && cargo build -q --release -p rvmadm --bin imgadm)
IMGADM="$TARGET/release/imgadm"

WORK=$(mktemp -d /tmp/bench-import.XXXXXX)
POOL="bench$$"
SRV_PID=
cleanup() {
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
    # zfs-fuse answers "pool is busy" for a moment after its datasets were
    # used: retry, and keep the pool's file if the pool is still there.
    local k
    for k in 1 2 3 4 5 6 7 8; do
        zpool list -H -o name "$POOL" >/dev/null 2>&1 || break
        zpool destroy -f "$POOL" 2>/dev/null && break
        sleep 1
    done
    if zpool list -H -o name "$POOL" >/dev/null 2>&1; then
        echo "bench-import: pool $POOL is left: zpool destroy -f $POOL; rm -rf $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM

truncate -s 3G "$WORK/pool.img"
zpool create -f -m "$WORK/mnt" "$POOL" "$WORK/pool.img"
cat > "$WORK/vmadm.toml" <<T
pool = "$POOL"
state_dir = "$WORK/state"
image_dir = "$WORK/images"
run_dir = "$WORK/run"
driver = "none"
T
export VMADM_CONFIG="$WORK/vmadm.toml"

echo "bench-import: making a ${MB} MiB tree" >&2
mkdir -p "$WORK/tree"
# base64 of random bytes: gzip shrinks it to ~3/4, like real binaries do.
for i in $(seq 1 $((MB / 30))); do
    head -c $((30 * 1024 * 1024 * 3 / 4)) /dev/urandom | base64 -w 0 > "$WORK/tree/blob$i"
done
"$IMGADM" build "$WORK/tree" -o "$WORK/out" -c gzip name=bench version=1 os=linux >/dev/null
rm -rf "$WORK/tree"
MANIFEST=$(ls "$WORK"/out/*.json)
FILE=$(ls "$WORK"/out/*.zfs.gz)
UUID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uuid"])' "$MANIFEST")
SIZE=$(stat -c %s "$FILE")
echo "bench-import: image $UUID, file $((SIZE / 1024 / 1024)) MiB gzip" >&2

cat > "$WORK/srv.py" <<'PY'
import http.server, shutil, sys, os
manifest, path, uuid = sys.argv[1], sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        p = self.path.split('?')[0].rstrip('/')
        if p == '/ping':
            body = b'{"ping":"pong","imgapi":true}'
        elif p == '/images/' + uuid:
            body = open(manifest, 'rb').read()
        elif p == '/images/' + uuid + '/file':
            self.send_response(200)
            self.send_header('Content-Length', str(os.path.getsize(path)))
            self.end_headers()
            with open(path, 'rb') as f:
                shutil.copyfileobj(f, self.wfile, 1 << 20)
            return
        else:
            self.send_response(404); self.end_headers(); return
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[4])), H).serve_forever()
PY
PORT=$((20000 + $$ % 20000))
python3 "$WORK/srv.py" "$MANIFEST" "$FILE" "$UUID" "$PORT" &
SRV_PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null && break; sleep 0.1; done
"$IMGADM" sources -a "http://127.0.0.1:$PORT" >/dev/null
URL="http://127.0.0.1:$PORT/images/$UUID/file"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: > "$WORK/t_imgadm"; : > "$WORK/t_pipe"; : > "$WORK/rss"
for r in $(seq 1 "$ROUNDS"); do
    sync
    t0=$(now)
    /usr/bin/time -v -o "$WORK/time.txt" "$IMGADM" import -q "$UUID" >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc -l >> "$WORK/t_imgadm"
    awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$WORK/time.txt" >> "$WORK/rss"
    "$IMGADM" delete "$UUID" >/dev/null

    sync
    t0=$(now)
    curl -sf "$URL" | tee >(sha1sum > "$WORK/sha1.txt") | gunzip | zfs receive "$POOL/pipe"
    t1=$(now)
    echo "$t1 - $t0" | bc -l >> "$WORK/t_pipe"
    zfs destroy -r "$POOL/pipe" 2>/dev/null || { sleep 1; zfs unmount -f "$POOL/pipe" || true; zfs destroy -r "$POOL/pipe"; }
    echo "bench-import: round $r: imgadm $(tail -n1 "$WORK/t_imgadm") s, pipeline $(tail -n1 "$WORK/t_pipe") s, rss $(tail -n1 "$WORK/rss") KiB" >&2
done

TI=$(median < "$WORK/t_imgadm")
TP=$(median < "$WORK/t_pipe")
RSS=$(sort -n "$WORK/rss" | tail -n1)
MIB=$(echo "$SIZE / 1048576" | bc -l)
printf 'file: %.1f MiB gzip (%d rounds)\n' "$MIB" "$ROUNDS"
printf 'imgadm import:  median %.2f s  %.1f MiB/s\n' "$TI" "$(echo "$MIB / $TI" | bc -l)"
printf 'curl|gunzip|zfs receive (+sha1sum): median %.2f s  %.1f MiB/s\n' "$TP" "$(echo "$MIB / $TP" | bc -l)"
printf 'ratio (pipeline time / imgadm time, goal >= 0.95): %.3f\n' "$(echo "$TP / $TI" | bc -l)"
printf 'imgadm peak RSS: %.1f MiB (goal < 64)\n' "$(echo "$RSS / 1024" | bc -l)"
