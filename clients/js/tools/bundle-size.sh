#!/usr/bin/env bash
# bundle-size.sh - the SDK's size in a browser bundle next to centrifuge-js
# and socket.io-client: each library's client class imported by a one-line
# entry, bundled for browsers by esbuild (--bundle --minify, ESM), then
# gzip -9. The peers and esbuild, at the versions below, go into a
# temporary folder from npm; nothing is installed in the repository.
#   bash clients/js/tools/bundle-size.sh
set -euo pipefail
ESBUILD=0.28.2 CENTRIFUGE=5.8.0 SOCKETIO=4.8.4
SDK=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error "esbuild@$ESBUILD" "centrifuge@$CENTRIFUGE" \
    "socket.io-client@$SOCKETIO" >/dev/null
cat >holdfast.js <<JS
export { HoldfastClient } from '$SDK/src/index.js';
JS
cat >holdfast-msgpack.js <<JS
export { HoldfastClient } from '$SDK/src/index.js';
export { msgpackCodec } from '$SDK/src/msgpack.js';
JS
echo "export { Centrifuge } from 'centrifuge';" >centrifuge.js
echo "export { Centrifuge } from 'centrifuge/build/protobuf';" >centrifuge-protobuf.js
echo "export { io } from 'socket.io-client';" >socketio.js
printf '%-34s %10s %10s\n' "bundle (esbuild $ESBUILD, minified)" "bytes" "gzip -9"
for entry in holdfast holdfast-msgpack centrifuge centrifuge-protobuf socketio; do
    if ! npx esbuild "$entry.js" --bundle --minify --format=esm --platform=browser \
        --log-level=error --outfile="$entry.min.js" 2>"$entry.err"; then
        printf '%-34s %10s\n' "$entry" "(failed: $(head -c 80 "$entry.err"))"
        continue
    fi
    case $entry in
    holdfast) name="@holdfast/client" ;;
    holdfast-msgpack) name="@holdfast/client + msgpack" ;;
    centrifuge) name="centrifuge $CENTRIFUGE (JSON)" ;;
    centrifuge-protobuf) name="centrifuge $CENTRIFUGE (protobuf)" ;;
    socketio) name="socket.io-client $SOCKETIO" ;;
    esac
    printf '%-34s %10d %10d\n' "$name" "$(wc -c <"$entry.min.js")" "$(gzip -9c "$entry.min.js" | wc -c)"
done
