#!/usr/bin/env bash
# install-deps.sh - installs the Debian 12 packages Holdfast needs to build,
# test and run locally, if any are missing (apt-get; sudo when not root).
set -euo pipefail
PACKAGES=(
    # build
    cmake make gcc pkg-config clang-format
    libwebsockets-dev librdkafka-dev libhiredis-dev libpq-dev libmsgpack-dev libjansson-dev
    # run the local stack and the tests against real servers
    postgresql postgresql-client redis-server redis-tools kcat curl python3 util-linux procps
    # WebSocket clients the project did not write, for the gateway tests
    python3-websockets python3-msgpack
)
# load generators, only for `make bench`
[[ ${HOLDFAST_BENCH:-0} == 1 ]] && PACKAGES+=(wrk)
missing=()
for pkg in "${PACKAGES[@]}"; do
    [[ $pkg == \#* ]] && continue
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0
echo "installing missing packages: ${missing[*]}" >&2
SUDO=()
[[ $(id -u) == 0 ]] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# Debian starts a system-wide redis/postgres on install where it can; the
# stack never uses those (it runs its own on free ports).
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
