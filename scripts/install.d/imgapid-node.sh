#!/usr/bin/env bash
# Installs the npm IMGAPI client (sdc-clients) and imgmanifest that
# imgapid's third-party-client test drives, into the git-ignored
# imgapid/tests/node/node_modules. Idempotent; run by `scripts/install-deps.sh --test`.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
dir="$here/imgapid/tests/node"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "imgapid-node: installing nodejs and npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ -f "$dir/node_modules/sdc-clients/package.json" ] && [ -f "$dir/node_modules/imgmanifest/package.json" ] \
   && grep -q '"version": "13.0.6"' "$dir/node_modules/sdc-clients/package.json"; then
  exit 0
fi
echo "imgapid-node: npm install in $dir" >&2
cd "$dir"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi
