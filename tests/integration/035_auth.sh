#!/usr/bin/env bash
# Auth and limits (invariants 9 and 10, docs/design.md): tokens signed by
# PyJWT (HS256, RS256, ES256) and API keys against ingest and the gateway;
# forged, expired, none-algorithm and algorithm-confusion tokens; channel
# patterns on publish, history and subscribe; publish rate per subject;
# connections per subject and per address; messages per connection; a token
# expiring on an open connection; auth off only when asked, with a warning;
# a service with auth on and no key refuses to start.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"

hf_pipeline_start
secret=$HF_RUN/auth.secret
head -c 48 /dev/urandom | base64 -w0 >"$secret"
api_key=key-billing-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '# subject key patterns\nbilling %s invoices:*\n' "$api_key" >"$HF_RUN/api_keys"
openssl genrsa -out "$HF_RUN/rsa.pem" 2048 2>/dev/null
openssl rsa -in "$HF_RUN/rsa.pem" -pubout -out "$HF_RUN/rsa.pub" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$HF_RUN/ec.pem"
openssl ec -in "$HF_RUN/ec.pem" -pubout -out "$HF_RUN/ec.pub" 2>/dev/null

HF_AUTH=true
hf_ingest_start "" --auth-key-file "$secret" --auth-api-keys-file "$HF_RUN/api_keys" \
    --publish-rate 1 --publish-burst 20
hf_relay_start ra
hf_gateway_start ga --auth-key-file "$secret" --auth-leeway 0 --max-conns-per-subject 3 \
    --client-msg-rate 5 --client-msg-burst 10
hf_gateway_start gip --auth-key-file "$secret" --max-conns-per-ip 2

# other_ingest NAME VAR FLAGS...: sets VAR to its URL once it is live. (Not
# a $(...) substitution: the part started in a subshell would be unknown
# to hf_stop_all and outlive the test.)
other_ingest() {
    local name=$1 var=$2 port
    shift 2
    port=$(hf_free_port)
    hf_spawn "$name" "$HF_BIN/holdfast-ingest" --port "$port" --pg-url "$HF_PG_URL" "$@"
    hf_wait_until 30 "$name /livez" hf_http_ok "http://127.0.0.1:$port/livez" ||
        hf_die "$name did not start (see $HF_RUN/$name.log)"
    printf -v "$var" '%s' "http://127.0.0.1:$port"
}
other_ingest ingest-rs url_rs --auth-alg RS256 --auth-key-file "$HF_RUN/rsa.pub"
other_ingest ingest-es url_es --auth-alg ES256 --auth-key-file "$HF_RUN/ec.pub"
other_ingest ingest-open url_open --auth=false
hf_check "auth off is logged as a warning" grep -q "auth is off" "$HF_RUN/ingest-open.log"
hf_check "auth on says nothing of the kind" bash -c "! grep -q 'auth is off' '$HF_RUN/ingest.log'"

hf_check "auth_check.py: every token and limit check" \
    /usr/bin/python3 "$HF_SUPPORT/auth_check.py" --ingest "$HF_INGEST_URL" --ingest-rs "$url_rs" \
    --ingest-es "$url_es" --ingest-open "$url_open" --gateway "$WS_ga" --gateway-ip "$WS_gip" \
    --secret "$secret" --rs-key "$HF_RUN/rsa.pem" --rs-pub "$HF_RUN/rsa.pub" \
    --es-key "$HF_RUN/ec.pem" --api-key "$api_key" --pg "$HF_PG_URL"

# Each refusal is counted.
for m in holdfast_ingest_auth_failed_total holdfast_ingest_auth_forbidden_total holdfast_ingest_rate_limited_total; do
    hf_check "ingest counts $m" test "$(hf_metric "$HF_INGEST_PORT" "$m")" -gt 0
done
for m in holdfast_gateway_auth_failed_total holdfast_gateway_auth_forbidden_total \
    'holdfast_gateway_limited_total{limit="connections_per_subject"}' \
    'holdfast_gateway_limited_total{limit="message_rate"}'; do
    hf_check "ga counts $m" test "$(hf_metric "$PORT_ga" "$m")" -gt 0
done
hf_check "gip counts connections_per_ip" \
    test "$(hf_metric "$PORT_gip" 'holdfast_gateway_limited_total{limit="connections_per_ip"}')" -gt 0
hf_check "the secret never reaches a log" bash -c "! grep -rqF \"\$(cat '$secret')\" '$HF_RUN'/*.log"

# Start-up refusals: exit 2 with the reason.
expect_refusal() { # expect_refusal WORDS FLAGS...
    local words=$1 rc=0
    shift
    "$HF_BIN/holdfast-ingest" --port 0 --pg-url "$HF_PG_URL" "$@" >"$HF_RUN/refusal.log" 2>&1 || rc=$?
    [[ $rc == 2 ]] && grep -q "$words" "$HF_RUN/refusal.log"
}
hf_check "auth on without a key: exit 2, says so" expect_refusal "no key is set"
hf_check "a short HS256 secret: exit 2" expect_refusal "at least 32 bytes" --auth-secret short
hf_check "RS256 with a non-PEM key file: exit 2" expect_refusal "not a PEM public key" \
    --auth-alg RS256 --auth-key-file "$secret"
hf_check "gateway too: auth on without a key: exit 2" bash -c \
    "'$HF_BIN/holdfast-gateway' --port 0 2>&1 | grep -q 'no key is set'; test \${PIPESTATUS[0]} -eq 2"
hf_checks_done
