#!/usr/bin/env bash
# install-deps.sh - installs the Debian 12 packages Holdfast needs to build,
# test and run locally, if any are missing (apt-get; sudo when not root).
set -euo pipefail
PACKAGES=(
    # build
    cmake make gcc pkg-config clang-format
    libwebsockets-dev librdkafka-dev libhiredis-dev libpq-dev libmsgpack-dev libjansson-dev libjwt-dev
    # the fuzzers (libFuzzer comes with clang's runtime)
    clang libclang-rt-14-dev
    # run the local stack and the tests against real servers (Node: the demo page's server)
    postgresql postgresql-client redis-server redis-tools kcat curl python3 util-linux procps nodejs
    # WebSocket clients the project did not write, for the gateway tests
    python3-websockets python3-msgpack
    # tokens signed by a JWT library the project did not write, for the auth tests
    python3-jwt python3-cryptography openssl
)
# only for the tests: offline checks of deploy/k8s (the schema validator
# runs on Node), the JavaScript client's tests (Node) and its browser test
# (Debian's Chromium, driven by playwright-core)
[[ ${HOLDFAST_TEST:-0} == 1 ]] && PACKAGES+=(yamllint python3-yaml nodejs npm chromium)
# load generators, only for `make bench`
[[ ${HOLDFAST_BENCH:-0} == 1 ]] && PACKAGES+=(wrk gnuplot-nox nodejs npm)
missing=()
for pkg in "${PACKAGES[@]}"; do
    [[ $pkg == \#* ]] && continue
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
# A machine with Node.js from elsewhere (a nodejs package of another origin
# conflicts with Debian's npm) keeps it.
if command -v node >/dev/null && command -v npm >/dev/null; then
    filtered=()
    for pkg in "${missing[@]}"; do [[ $pkg == nodejs || $pkg == npm ]] || filtered+=("$pkg"); done
    missing=("${filtered[@]}")
fi
apt_install() {
    echo "installing missing packages: $*" >&2
    SUDO=()
    [[ $(id -u) == 0 ]] || SUDO=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    # Debian starts a system-wide redis/postgres on install where it can; the
    # stack never uses those (it runs its own on free ports).
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
((${#missing[@]} == 0)) || apt_install "${missing[@]}"

[[ ${HOLDFAST_TEST:-0} == 1 ]] || exit 0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# promtool (checks /metrics and alert rules) from Debian's prometheus
# package, unpacked into .deps/ rather than installed: installing it would
# start a Prometheus server.
if [[ ! -x $ROOT/.deps/bin/promtool ]]; then
    mkdir -p "$ROOT/.deps/pkg" "$ROOT/.deps/bin"
    SUDO=()
    [[ $(id -u) == 0 ]] || SUDO=(sudo)
    (cd "$ROOT/.deps/pkg" && apt-get download prometheus >/dev/null 2>&1 ||
        { "${SUDO[@]}" apt-get update -qq && apt-get download prometheus >/dev/null; })
    dpkg-deb -x "$ROOT"/.deps/pkg/prometheus_*.deb "$ROOT/.deps/pkg/root"
    cp "$ROOT/.deps/pkg/root/usr/bin/promtool" "$ROOT/.deps/bin/promtool"
    rm -rf "$ROOT/.deps/pkg"
fi
# The k8s schema validator's npm packages (versions locked in its
# package-lock.json).
if [[ ! -d $ROOT/tools/k8s-validate/node_modules ]]; then
    npm ci --prefix "$ROOT/tools/k8s-validate" --no-audit --no-fund --loglevel=error >/dev/null
fi
# The JavaScript client's test tools (ws for Node, playwright-core to drive
# Debian's Chromium, typescript for its declarations; versions locked in
# clients/js/package-lock.json), again whenever the lock file changed.
SDK=$ROOT/clients/js
if [[ ! -f $SDK/node_modules/.package-lock.json || $SDK/package-lock.json -nt $SDK/node_modules/.package-lock.json ]]; then
    npm ci --prefix "$SDK" --no-audit --no-fund --loglevel=error >/dev/null
fi
