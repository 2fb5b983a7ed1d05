#!/usr/bin/env bash
# Benchmarks imgapid on loopback (127.0.0.1 only):
#  1. GET /images over 10,000 images: p50/p99 latency under load from wrk
#     (a second process), for the default page (1000 manifests), a small page
#     after a marker, and a filter that scans everything;
#  2. download throughput of one large image file from imgapid and from nginx
#     serving the same file from the same disk, 1 and 64 concurrent clients.
# Installs wrk and nginx-light from Debian if missing. Prints a summary.
# Env: IMAGES (10000), FILE_MIB (64), DURATION (10s), RUNS (3); IMGAPID_BIN
# to measure another build of the server (e.g. before/after a change).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
IMAGES=${IMAGES:-10000}
FILE_MIB=${FILE_MIB:-64}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
if ((${#need[@]})); then
  echo "bench: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release -q -p imgapid --bin imgapid --example seed
bin=${IMGAPID_BIN:-$CARGO_TARGET_DIR/release/imgapid}
seed=$CARGO_TARGET_DIR/release/examples/seed

work=$(mktemp -d /var/tmp/imgapid-bench.XXXXXX)
chmod 755 "$work" # nginx workers run unprivileged and must reach the file
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "bench: seeding $IMAGES images and a ${FILE_MIB} MiB file in $work" >&2
read -r big_uuid big_path < <("$seed" "$work/data" "$IMAGES" "$FILE_MIB")

cat >"$work/imgapid.toml" <<CFG
listen = "127.0.0.1:0"
data_dir = "$work/data"
CFG
RUST_LOG=warn "$bin" --config "$work/imgapid.toml" >"$work/imgapid.out" 2>"$work/imgapid.err" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/imgapid.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$work/imgapid.out")
case "$addr" in 127.0.0.1:*) ;; *) echo "bench: imgapid did not start" >&2; cat "$work/imgapid.err" >&2; exit 1 ;; esac

# nginx serves the very same blob file, sendfile on, as it would in production.
mkdir -p "$work/nginx/www" "$work/nginx/tmp"
ln "$big_path" "$work/nginx/www/file" 2>/dev/null || ln -s "$big_path" "$work/nginx/www/file"
nport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat >"$work/nginx/nginx.conf" <<CFG
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp;
  scgi_temp_path $work/nginx/tmp;
  server {
    listen 127.0.0.1:$nport;
    root $work/nginx/www;
  }
}
CFG
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$nport/file" -r 0-0 && break; sleep 0.1; done

code=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$nport/file")
size=$(stat -c %s "$big_path")
[ "$code" = "200 $size" ] || { echo "bench: nginx does not serve the file ($code)" >&2; cat "$work/nginx/error.log" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://$addr/images/$big_uuid/file")
[ "$code" = "200 $size" ] || { echo "bench: imgapid does not serve the file ($code)" >&2; exit 1; }

# Warm the page cache so both servers read from memory.
cat "$big_path" >/dev/null
size=$(stat -c %s "$big_path")

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_ms() { # wrk latency "1.23ms" / "850.00us" / "1.02s" -> ms
  awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f\n", v}'
}

list_bench() { # name url -> "p50 p99 rps" medians
  local name=$1 url=$2 p50s=() p99s=() rpss=()
  for _ in $(seq "$RUNS"); do
    out=$(wrk -t2 -c16 -d"$DURATION" --latency "$url")
    p50s+=("$(awk '$1=="50%"{print $2}' <<<"$out" | to_ms)")
    p99s+=("$(awk '$1=="99%"{print $2}' <<<"$out" | to_ms)")
    rpss+=("$(awk '/^Requests\/sec/{print $2}' <<<"$out")")
  done
  printf '%-34s p50 %8s ms   p99 %8s ms   %9s req/s\n' "$name" \
    "$(printf '%s\n' "${p50s[@]}" | median)" "$(printf '%s\n' "${p99s[@]}" | median)" \
    "$(printf '%s\n' "${rpss[@]}" | median)"
}

# wrk's own Transfer/sec has two significant digits; this prints exact bytes/s.
cat >"$work/bytes.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("BYTES_PER_SEC %.0f\n", summary.bytes / (summary.duration / 1e6)))
end
LUA

dl_bench() { # url conns -> median MiB/s (wrk counts every byte read, so
  # partly-received responses still count: long files with many clients are fair)
  local url=$1 c=$2 t=1 vals=()
  ((c > 1)) && t=2
  for _ in $(seq "$RUNS"); do
    out=$(wrk -t"$t" -c"$c" -d"$DURATION" -s "$work/bytes.lua" "$url")
    vals+=("$(awk '/^BYTES_PER_SEC/{printf "%.1f\n", $2/1048576}' <<<"$out")")
  done
  printf '%s\n' "${vals[@]}" | median
}

first=$(curl -sf "http://$addr/images?limit=1" | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["uuid"])')
mid=$(curl -sf "http://$addr/images?limit=1000" | python3 -c 'import json,sys;print(json.load(sys.stdin)[-1]["uuid"])')
count=$(curl -sf "http://$addr/images?limit=1000" | python3 -c 'import json,sys;print(len(json.load(sys.stdin)))')
echo "== GET /images with $IMAGES images (wrk -t2 -c16 -d$DURATION, median of $RUNS runs) =="
echo "default page returns $count manifests ($(curl -sf "http://$addr/images" | wc -c) bytes)"
list_bench "GET /images" "http://$addr/images"
list_bench "GET /images?limit=100&marker=…" "http://$addr/images?limit=100&marker=$mid"
list_bench "GET /images?name=nomatch (scan)" "http://$addr/images?name=nomatch"
list_bench "GET /images/:uuid" "http://$addr/images/$first"

echo "== download of a $FILE_MIB MiB file (wrk -d$DURATION, median of $RUNS runs) =="
for c in 1 64; do
  ours=$(dl_bench "http://$addr/images/$big_uuid/file" "$c")
  theirs=$(dl_bench "http://127.0.0.1:$nport/file" "$c")
  ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN{printf "%.2f", a/b}')
  printf '%2d client(s): imgapid %8s MiB/s   nginx %8s MiB/s   ratio %s\n' "$c" "$ours" "$theirs" "$ratio"
done
