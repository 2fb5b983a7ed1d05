#!/usr/bin/env bash
# Installs what rvmadm needs on Debian and starts the zfs-fuse daemon.
# Idempotent: does nothing that is already done.
#
#   scripts/install-deps.sh          the main job: build and run
#                                    (scripts/debian-packages.txt)
#   scripts/install-deps.sh --test   that, plus what only the tests use
#                                    (scripts/debian-packages-test.txt and the
#                                    installers in scripts/install.d/: Node.js,
#                                    npm clients)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

lists=("$here/debian-packages.txt")
test_deps=0
case ${1:-} in
  --test) test_deps=1; lists+=("$here/debian-packages-test.txt") ;;
  "") ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

mapfile -t wanted < <(cat "${lists[@]}" | grep -vE '^\s*(#|$)')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# zfs-fuse is a userland daemon: start it unless it already answers.
if ! pgrep -x zfs-fuse >/dev/null; then
  echo "install-deps: starting zfs-fuse" >&2
  # A stale pid file from a dead daemon makes zfs-fuse refuse to start.
  rm -f /run/zfs-fuse.pid
  zfs-fuse -p /run/zfs-fuse.pid
  for _ in $(seq 50); do zpool list >/dev/null 2>&1 && break; sleep 0.1; done
fi
zpool list >/dev/null 2>&1 || { echo "install-deps: zfs-fuse does not answer" >&2; exit 1; }

# Test-only installers (npm clients, …) dropped in scripts/install.d/.
if [ "$test_deps" = 1 ] && [ -d "$here/install.d" ]; then
  for f in "$here"/install.d/*.sh; do
    [ -e "$f" ] && bash "$f"
  done
fi
exit 0
