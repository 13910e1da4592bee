#!/usr/bin/env bash
# CORS on ingest (--cors-origins): a page from an allowed origin may call
# the history API and publish from a browser; any other origin gets
# nothing that lets its page read an answer. Preflights: 204 with the
# methods of the path, the request headers the API reads and Max-Age for
# an allowed origin, 403 with a JSON error and no CORS header for any
# other. Responses carry Vary: Origin, echo the origin itself (never
# "*", even with --cors-origins '*'), never allow credentials, and expose
# Retry-After. Without the setting there is no CORS header at all (and
# every preflight is refused). Bad lists are refused at start.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pg_start "" fsync=off
hf_migrate
secret=$HF_RUN/auth.secret
(umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$secret")
export HOLDFAST_AUTH_KEY_FILE=$secret
HF_AUTH=true
APP=http://127.0.0.1:8099
hf_ingest_start "" --cors-origins "https://app.example.com, $APP"
PUB=$("$HF_BIN/holdfast-token" --key-file "$secret" --sub page --publish 'c:*' --subscribe 'c:*' --ttl 600)

# req METHOD PATH [CURL ARGS...]: the response's status line and headers
# (lower-cased names) in $HF_RUN/h, its body in $HF_RUN/b; prints the status.
req() {
    local method=$1 path=$2
    shift 2
    curl -sS --max-time 10 -X "$method" -D "$HF_RUN/h.raw" -o "$HF_RUN/b" -w '%{http_code}' \
        "$@" "$HF_INGEST_URL$path"
    tr -d '\r' <"$HF_RUN/h.raw" | sed 's/^\([^:]*\):/\L\1:/' >"$HF_RUN/h"
}
# hdr NAME: the value of response header NAME ("" when absent).
hdr() { sed -n "s/^$1: //p" "$HF_RUN/h" | head -n 1; }
has_no() { ! grep -qi "^$1:" "$HF_RUN/h"; }
error_code() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["code"])' "$HF_RUN/b"; }

# --- an allowed origin -------------------------------------------------------
code=$(req POST /v1/events -H "Origin: $APP" -H "Authorization: Bearer $PUB" \
    -H 'Content-Type: application/json' -d '{"channel":"c:1","data":{"n":1}}')
hf_check_eq "allowed origin: the publish is served" 201 "$code"
hf_check_eq "... Access-Control-Allow-Origin is the origin itself" "$APP" "$(hdr access-control-allow-origin)"
hf_check_eq "... Vary: Origin" "Origin" "$(hdr vary)"
hf_check_eq "... Retry-After is exposed to the page" "Retry-After" "$(hdr access-control-expose-headers)"
hf_check "... never Access-Control-Allow-Credentials" has_no access-control-allow-credentials
code=$(req GET "/v1/channels/c:1/events?since=-1" -H "Origin: https://app.example.com" \
    -H "Authorization: Bearer $PUB")
hf_check_eq "allowed origin: the history API answers" 200 "$code"
hf_check_eq "... readable by that page" "https://app.example.com" "$(hdr access-control-allow-origin)"
code=$(req GET "/v1/channels/c:1/events" -H "Origin: $APP")
hf_check_eq "allowed origin without a token: 401" 401 "$code"
hf_check_eq "... which the page may read (it says why)" "$APP" "$(hdr access-control-allow-origin)"

code=$(req OPTIONS /v1/events -H "Origin: $APP" -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: authorization, content-type, idempotency-key')
hf_check_eq "preflight from an allowed origin: 204" 204 "$code"
hf_check_eq "... allow origin" "$APP" "$(hdr access-control-allow-origin)"
hf_check_eq "... the methods of /v1/events" "POST, OPTIONS" "$(hdr access-control-allow-methods)"
hf_check_eq "... the headers the API reads" "Authorization, Content-Type, Idempotency-Key" \
    "$(hdr access-control-allow-headers)"
hf_check_eq "... cached for 10 minutes" 600 "$(hdr access-control-max-age)"
hf_check_eq "... Vary: Origin" "Origin" "$(hdr vary)"
hf_check "... no Content-Length on a 204" has_no content-length
hf_check "... no credentials" has_no access-control-allow-credentials
code=$(req OPTIONS "/v1/channels/c:1/events" -H "Origin: $APP" -H 'Access-Control-Request-Method: GET')
hf_check_eq "preflight of the history API: 204" 204 "$code"
hf_check_eq "... GET" "GET, OPTIONS" "$(hdr access-control-allow-methods)"
# Keep-alive after a preflight: the browser's next request reuses the connection.
hf_check_eq "a preflight then the request on one connection" "204 201" "$(curl -sS --max-time 10 \
    -o /dev/null -w '%{http_code} ' -X OPTIONS -H "Origin: $APP" -H 'Access-Control-Request-Method: POST' \
    "$HF_INGEST_URL/v1/events" --next -o /dev/null -w '%{http_code}' -X POST -H "Origin: $APP" \
    -H "Authorization: Bearer $PUB" -H 'Content-Type: application/json' -d '{"channel":"c:2","data":2}' \
    "$HF_INGEST_URL/v1/events")"

# --- any other origin ---------------------------------------------------------
for origin in https://evil.test http://127.0.0.1:8098 https://app.example.com.evil.test null; do
    code=$(req OPTIONS /v1/events -H "Origin: $origin" -H 'Access-Control-Request-Method: POST')
    hf_check_eq "preflight from $origin: 403" 403 "$code"
    hf_check_eq "... with a JSON error" origin_not_allowed "$(error_code)"
    hf_check "... and no Access-Control-Allow-Origin" has_no access-control-allow-origin
    code=$(req GET "/v1/channels/c:1/events" -H "Origin: $origin" -H "Authorization: Bearer $PUB")
    hf_check_eq "$origin: a request is still served (the browser is what refuses it)" 200 "$code"
    hf_check "... but nothing lets its page read the answer" has_no access-control-allow-origin
    hf_check_eq "... Vary: Origin" "Origin" "$(hdr vary)"
done
code=$(req GET /livez)
hf_check "no Origin: no Access-Control-Allow-Origin" has_no access-control-allow-origin
code=$(req OPTIONS /v1/events)
hf_check_eq "OPTIONS that is no preflight: 405 as before" 405 "$code"

# --- '*' and off ---------------------------------------------------------------
hf_stop ingest
hf_ingest_start "" --cors-origins '*'
code=$(req OPTIONS /v1/events -H 'Origin: https://any.test' -H 'Access-Control-Request-Method: POST')
hf_check_eq "'*': any origin's preflight: 204" 204 "$code"
hf_check_eq "... echoing that origin, not '*'" "https://any.test" "$(hdr access-control-allow-origin)"
code=$(req OPTIONS /v1/events -H 'Origin: null' -H 'Access-Control-Request-Method: POST')
hf_check_eq "'*' still refuses the null origin" 403 "$code"
hf_check "'*' is logged as a warning" grep -q 'cors-origins is \*' "$HF_RUN/ingest.log"
hf_stop ingest
hf_ingest_start ""
code=$(req GET "/v1/channels/c:1/events" -H "Origin: $APP" -H "Authorization: Bearer $PUB")
hf_check_eq "CORS off: served" 200 "$code"
hf_check "... with no CORS header" has_no access-control-allow-origin
hf_check "... and no Vary" has_no vary
code=$(req OPTIONS /v1/events -H "Origin: $APP" -H 'Access-Control-Request-Method: POST')
hf_check_eq "CORS off: every origin's preflight is refused" 403 "$code"
hf_check_eq "... saying so" origin_not_allowed "$(error_code)"
hf_check "... no CORS header" has_no access-control-allow-origin
hf_stop ingest

# --- refused settings ----------------------------------------------------------
for bad in "https://app.example.com/" "*,https://app.example.com" "null" "HTTPS://APP.EXAMPLE.COM"; do
    rc=0
    "$HF_BIN/holdfast-ingest" --pg-url "$HF_PG_URL" --port 0 --cors-origins "$bad" 2>"$HF_RUN/bad.err" || rc=$?
    hf_check_eq "--cors-origins '$bad': exit 2" 2 "$rc"
    hf_check "... saying why" grep -q "cors-origins: " "$HF_RUN/bad.err"
done
hf_checks_done
