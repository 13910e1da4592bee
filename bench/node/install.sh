#!/usr/bin/env bash
# install.sh - the benchmark's Node.js peers (package.json beside this file)
# into bench/node/node_modules; does nothing when they are already there.
set -euo pipefail
cd "$(dirname "$0")"
if [[ -f node_modules/.holdfast-installed && node_modules/.holdfast-installed -nt package.json ]]; then
    exit 0
fi
npm install --no-audit --no-fund --loglevel=error
touch node_modules/.holdfast-installed
