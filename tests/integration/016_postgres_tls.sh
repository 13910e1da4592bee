#!/usr/bin/env bash
# PostgreSQL over TLS, the server verified (sslmode=verify-full) with a CA
# of the test's own making, as the Kubernetes manifests do with
# CloudNativePG's CA: a real PostgreSQL that refuses connections without
# TLS; holdfast-migrate, ingest (publishing) and the relay connect with the
# CA given in the URL or in libpq's PGSSLMODE / PGSSLROOTCERT (how the
# manifests give it); PostgreSQL shows their sessions encrypted. A server
# certificate from another CA, or a host name the certificate does not
# name, is refused: migrate fails saying why, ingest stays unready.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"
# libpq's TLS, not Holdfast's code, is what this exercises: the release
# build runs it (CI time is better spent elsewhere under the sanitizers).
if grep -q '^HOLDFAST_SANITIZE:BOOL=ON' "$1/CMakeCache.txt" 2>/dev/null; then
    hf_log "skipped in the sanitizer build (the release build runs it)"
    exit 77
fi

# A CA, a server certificate for 127.0.0.1 only, and a second CA.
tls=$HF_RUN/tls
mkdir -p "$tls"
mkcert() { # mkcert NAME SUBJECT [ISSUER-NAME SAN]: an EC key and a certificate
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$2" \
        -keyout "$tls/$1.key" -out "$tls/$1.csr" 2>/dev/null
    if [[ -z ${3:-} ]]; then
        openssl x509 -req -in "$tls/$1.csr" -signkey "$tls/$1.key" -days 2 -out "$tls/$1.crt" \
            -extfile <(printf 'basicConstraints=critical,CA:true\nkeyUsage=keyCertSign,cRLSign\n') 2>/dev/null
    else
        openssl x509 -req -in "$tls/$1.csr" -CA "$tls/$3.crt" -CAkey "$tls/$3.key" -CAcreateserial \
            -days 2 -out "$tls/$1.crt" -extfile <(printf 'subjectAltName=%s\n' "$4") 2>/dev/null
    fi
}
mkcert ca "/CN=holdfast test CA"
mkcert server "/CN=127.0.0.1" ca "IP:127.0.0.1"
mkcert rogue "/CN=another CA"

hf_pg_start "" fsync=off
data=$(hf_psql -c "SHOW data_directory")
cp "$tls/server.crt" "$tls/server.key" "$data/"
chmod 600 "$data/server.key"
if [[ $(id -u) == 0 ]]; then chown postgres: "$data/server.crt" "$data/server.key"; fi
# TLS only, over TCP.
cat >"$data/pg_hba.conf" <<'HBA'
hostssl   all         all 127.0.0.1/32 trust
hostssl   replication all 127.0.0.1/32 trust
hostnossl all         all 127.0.0.1/32 reject
hostnossl replication all 127.0.0.1/32 reject
HBA
hf_psql -c "ALTER SYSTEM SET ssl = on" >/dev/null
hf_psql -c "SELECT pg_reload_conf()" >/dev/null
hf_wait_until 10 "TLS in force" bash -c "! psql '$HF_PG_URL?sslmode=disable' -XqtAc 'SELECT 1' >/dev/null 2>&1"
hf_check "a connection without TLS is refused" \
    bash -c "! psql '$HF_PG_URL?sslmode=disable' -XqtAc 'SELECT 1' >/dev/null 2>&1"

VERIFIED="$HF_PG_URL?sslmode=verify-full&sslrootcert=$tls/ca.crt"
hf_check "holdfast-migrate over verify-full" "$HF_BIN/holdfast-migrate" --pg-url "$VERIFIED"
HF_PG_URL=$VERIFIED hf_ingest_start
hf_check_eq "ingest publishes over verify-full" 201 "$(curl -s -o /dev/null -w '%{http_code}' \
    -H 'Content-Type: application/json' -d '{"channel":"tls","data":1}' "$HF_INGEST_URL/v1/events")"
hf_kafka_start 8 holdfast.events
hf_spawn relay env PGSSLMODE=verify-full PGSSLROOTCERT="$tls/ca.crt" "$HF_BIN/holdfast-relay" \
    --port 0 --pg-url "$HF_PG_URL" --kafka-brokers "$HF_KAFKA_BROKERS" --redis-url "" --relay-id tls
hf_check "the relay connects with PGSSLMODE and PGSSLROOTCERT" hf_wait_until 30 "the relay on PostgreSQL" \
    grep -q 'connected to PostgreSQL' "$HF_RUN/relay.log"
sessions() { # sessions APPLICATION-NAME [BACKEND-TYPE]: "true N" when its N sessions are all encrypted
    psql "$VERIFIED" -XqtAc "SELECT coalesce(bool_and(s.ssl), false) || ' ' || count(*) FROM pg_stat_activity a
        JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = '$1'
        AND a.backend_type = '${2:-client backend}'"
}
hf_check "ingest's sessions are encrypted ($(sessions holdfast-ingest))" \
    bash -c "[[ '$(sessions holdfast-ingest)' == 'true '[1-9]* ]]"
hf_check "the relay's replication stream is up" hf_wait_until 30 "the relay streaming" \
    grep -q 'streaming from slot' "$HF_RUN/relay.log"
hf_check "the relay's SQL session is encrypted ($(sessions holdfast-relay))" \
    bash -c "[[ '$(sessions holdfast-relay)' == 'true '[1-9]* ]]"
hf_check "the relay's replication session is encrypted ($(sessions holdfast-relay-stream walsender))" \
    bash -c "[[ '$(sessions holdfast-relay-stream walsender)' == 'true '[1-9]* ]]"
hf_stop relay
hf_stop ingest

# Another CA, another name: refused, saying why.
refused() { # refused DESCRIPTION EXPECTED URL
    local rc=0
    "$HF_BIN/holdfast-migrate" --pg-url "$3" --check >"$HF_RUN/refused.out" 2>&1 || rc=$?
    hf_check "$1: migrate fails (status $rc)" test "$rc" -eq 1
    hf_check "$1: it says '$2'" grep -q "$2" "$HF_RUN/refused.out"
}
refused "a server certificate from another CA" "certificate verify failed" \
    "$HF_PG_URL?sslmode=verify-full&sslrootcert=$tls/rogue.crt"
refused "a host name the certificate does not name" 'does not match host name' \
    "postgresql://holdfast@localhost:$HF_PG_PORT/holdfast?sslmode=verify-full&sslrootcert=$tls/ca.crt"
HF_INGEST_WAIT_READY=0 HF_PG_URL="$HF_PG_URL?sslmode=verify-full&sslrootcert=$tls/rogue.crt" hf_ingest_start
hf_check_eq "ingest refusing the server stays unready" 503 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$HF_INGEST_URL/readyz")"
hf_check "... and logs why" hf_wait_until 10 "the reason in ingest's log" grep -q 'certificate verify failed' "$HF_RUN/ingest.log"
hf_checks_done
