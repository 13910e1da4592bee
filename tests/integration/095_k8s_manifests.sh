#!/usr/bin/env bash
# deploy/k8s and the Dockerfile, checked without a cluster or a Docker
# engine: yamllint; every kustomization
# renders (kubectl kustomize); every built-in object validates against
# Kubernetes' schemas with no unknown field, and every custom resource
# against its CRD (tools/k8s-validate); the manifests agree with the
# binaries (tests/support/k8s_check.py: probe paths and ports, env vars,
# selectors, HPA targets, images, partitions, grace periods), and that
# check fails when a probe path, a port or an env var is made to disagree;
# promtool accepts the alert rules and a real /metrics scrape of ingest,
# relay and gateway; the image's runtime packages provide every library
# the binaries link and it contains every binary the manifests run.
set -euo pipefail
source "$(dirname "$0")/../support/lib.sh"
hf_test_begin "${1:-build}"
# Manifests and image checks: the sanitizer build would run the same checks
# over the same --help and /metrics text (CI time is better spent elsewhere).
if grep -q '^HOLDFAST_SANITIZE:BOOL=ON' "$1/CMakeCache.txt" 2>/dev/null; then
    hf_log "skipped in the sanitizer build (the release build runs it)"
    exit 77
fi

K8S=$HF_ROOT/deploy/k8s
PROMTOOL=$HF_ROOT/.deps/bin/promtool
VALIDATOR=$HF_ROOT/tools/k8s-validate
[[ -x $PROMTOOL && -d $VALIDATOR/node_modules ]] || hf_die "run tools/install-deps.sh first"
# kubectl has no current Debian 12 package: a machine without it cannot
# render kustomize, and says so loudly instead of failing the whole run.
if ! command -v kubectl >/dev/null; then
    hf_log "SKIPPED: kubectl is not installed: deploy/k8s was NOT checked (see deploy/k8s/README.md)"
    hf_checks_done
    exit 0
fi
CRDS=${HOLDFAST_K8S_CRDS:-$HF_ROOT/../shared/k8s-crds}
if [[ ! -d $CRDS ]]; then
    hf_log "NOT CHECKED: no CRD copies found (set HOLDFAST_K8S_CRDS): custom resources are not validated"
    CRDS=-
else # with the ones the repository carries (tests/k8s-crds: KafkaUser)
    mkdir -p "$HF_RUN/crds"
    cp -r "$CRDS"/. "$HF_RUN/crds/shared"
    cp -r "$HF_ROOT/tests/k8s-crds"/. "$HF_RUN/crds/repo"
    CRDS=$HF_RUN/crds
fi

hf_check "yamllint" yamllint -s -c "$K8S/.yamllint" "$K8S"
for k in base dependencies monitoring overlays/example; do
    hf_check "kubectl kustomize $k renders" bash -c "kubectl kustomize '$K8S/$k' >'$HF_RUN/${k//\//-}.yaml'"
done
R=$HF_RUN/overlays-example.yaml
{ cat "$R"; echo ---; cat "$K8S/base/secret.template.yaml"; echo ---
  cat "$K8S/monitoring/prometheus-adapter-rules.yaml"; } >"$HF_RUN/all.yaml"
hf_check "schemas: built-in objects (no unknown field) and custom resources (their CRDs)" \
    node "$VALIDATOR/validate.mjs" "$HF_RUN/all.yaml" "$CRDS"
ADAPTER=$K8S/monitoring/prometheus-adapter-rules.yaml
hf_check "the manifests agree with the binaries" \
    /usr/bin/python3 "$HF_SUPPORT/k8s_check.py" "$R" "$HF_BIN" "$HF_ROOT" "$ADAPTER"

hf_check "the Dockerfile's image holds what the manifests run and the binaries link" \
    /usr/bin/python3 "$HF_SUPPORT/dockerfile_check.py" "$HF_ROOT/Dockerfile" "$R" "$HF_BIN" "$HF_ROOT"

# chaos/ --k8s: every kubectl command the scenarios would run (their
# --dry-run) names a namespace, resource, selector, port or container this
# deployment has, and scales nothing an HPA owns.
CMDS=$HF_RUN/chaos-k8s.cmds
for run in kill-redis freeze-redis kill-gateway kill-relay "kill-relay --replica" \
    restart-postgres kill-postgres kafka-brokers-down redis-buffer-cut deep-resume; do
    # shellcheck disable=SC2086 # "kill-relay --replica" is two words
    bash "$HF_ROOT/chaos/${run%% *}.sh" ${run#"${run%% *}"} --k8s --dry-run --out "$HF_RUN/chaos" \
        2>&1 | grep '^kubectl ' >>"$CMDS" || true
done
hf_check "chaos --k8s: the scenarios' kubectl commands fit the deployment" \
    /usr/bin/python3 "$HF_SUPPORT/chaos_k8s_check.py" "$R" "$CMDS"
chaos_mutant() { # chaos_mutant DESCRIPTION SED-EXPRESSION
    sed -e "$2" "$CMDS" >"$HF_RUN/chaos-mutant.cmds"
    hf_check "chaos --k8s: $1 is caught" bash -c "! cmp -s '$CMDS' '$HF_RUN/chaos-mutant.cmds' &&
        ! /usr/bin/python3 '$HF_SUPPORT/chaos_k8s_check.py' '$R' '$HF_RUN/chaos-mutant.cmds' >/dev/null"
}
chaos_mutant "a StatefulSet name the deployment lacks" 's/statefulset\/holdfast-redis/statefulset\/holdfast-redys/'
chaos_mutant "a Service port the Service lacks" 's/svc\/holdfast-ingest PORT:80/svc\/holdfast-ingest PORT:8080/'
chaos_mutant "scaling the HPA-owned gateways" 's/deployment\/holdfast-relay --replicas/deployment\/holdfast-gateway --replicas/'
chaos_mutant "another namespace" '0,/-n holdfast /s//-n default /'

# The checks must catch a disagreement with the code.
mutant() { # mutant DESCRIPTION SED-EXPRESSION: k8s_check must fail on it
    sed -e "$2" "$R" >"$HF_RUN/mutant.yaml"
    if cmp -s "$R" "$HF_RUN/mutant.yaml"; then
        hf_check "$1 (the mutation applies)" false
        return
    fi
    hf_check "$1 is caught" bash -c "! /usr/bin/python3 '$HF_SUPPORT/k8s_check.py' '$HF_RUN/mutant.yaml' '$HF_BIN' '$HF_ROOT' '$ADAPTER' >'$HF_RUN/mutant.out'"
}
mutant "a readiness probe on a path the binary does not serve" '0,/path: \/readyz/s//path: \/ready/'
mutant "a listening port the probes do not use" '0,/value: "8090"/s//value: "8091"/'
mutant "an env var the binary does not read" '0,/- name: HOLDFAST_LOG_LEVEL/s//- name: HOLDFAST_LOGLEVEL/'
mutant "a partition count the topic does not have" 's/^  partitions: 8$/  partitions: 12/'
mutant "an image without a fixed tag" '0,/holdfast\/holdfast:0.1.0/s//holdfast\/holdfast:latest/'
mutant "a server listening on loopback only" '0,/value: 0.0.0.0/s//value: 127.0.0.1/'
mutant "a ConfigMap key that does not exist" '0,/key: kafka-brokers/s//key: kafka-broker/'
mutant "an HPA metric the adapter does not serve" 's/name: holdfast_gateway_connections$/name: holdfast_gateway_conns/'
mutant "an Ingress backend that does not exist" 's/^            name: holdfast-ingest$/            name: holdfast-nowhere/'
mutant "a liveness probe on a path other than /livez" '0,/path: \/livez/s//path: \/healthz/'
mutant "brokers that are not the Kafka's bootstrap" 's/holdfast-kafka-kafka-bootstrap:9093/holdfast-kafka-bootstrap:9093/'
mutant "a container keeping its capabilities" '0,/drop:/{n;s/- ALL/- NET_RAW/}'
# The stores' security.
mutant "a service using another's Kafka user" 's/sasl.username=holdfast-relay/sasl.username=holdfast-gateway/'
mutant "a reading service allowed to write the topic" '0,/^      - Read$/s//      - Read\n      - Write/'
mutant "a Kafka listener without TLS" 's/^      tls: true$/      tls: false/'
mutant "Kafka properties without SASL_SSL" 's/security.protocol=SASL_SSL/security.protocol=SSL/'
mutant "a password file that is not mounted" '0,/sasl.password=@\/etc\/holdfast\/kafka-user\/password/s//sasl.password=@\/etc\/holdfast\/kafka-user\/pw/'
mutant "Redis without protected mode" 's/protected-mode yes/protected-mode no/'
mutant "PostgreSQL not verified" '0,/value: verify-full/s//value: require/'
mutant "PostgreSQL accepting connections without TLS" '/hostnossl all all/d'
mutant "gateways open to any web page" 's|allowed-origins: https://app.example.com|allowed-origins: "*"|'
sed -e '0,/    listeners:/s//    listenerz: []\n    listeners:/' -e '0,/      terminationGracePeriodSeconds: 40/s//      terminationGracePeriodSeconds: 40\n      terminationGrace: 1/' \
    "$R" >"$HF_RUN/unknown.yaml"
hf_check "unknown fields in a built-in object (and a custom resource) are caught" bash -c \
    "! node '$VALIDATOR/validate.mjs' '$HF_RUN/unknown.yaml' '$CRDS' >'$HF_RUN/unknown.out' &&
     grep -q terminationGrace '$HF_RUN/unknown.out' &&
     { [[ '$CRDS' == - ]] || grep -q listenerz '$HF_RUN/unknown.out'; }"

# promtool: the shipped alert rules, and each service's real /metrics.
/usr/bin/python3 - "$R" >"$HF_RUN/rules.yaml" <<'PY'
import sys, yaml
rules = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"]
print(yaml.safe_dump({"groups": [g for r in rules for g in r["spec"]["groups"]]}))
PY
hf_check "promtool check rules" "$PROMTOOL" check rules "$HF_RUN/rules.yaml"
hf_pipeline_start
hf_ingest_start
hf_relay_start ra
hf_gateway_start ga --workers 2
for url in "$HF_INGEST_URL" "http://127.0.0.1:$PORT_ra" "http://127.0.0.1:$PORT_ga"; do
    hf_check "promtool check metrics $url/metrics" bash -c "curl -fsS '$url/metrics' | '$PROMTOOL' check metrics"
    curl -fsS "$url/metrics" >>"$HF_RUN/scraped.txt"
done
# Every holdfast_* series an alert or the dashboard reads is one a service
# exports (a renamed metric would leave an alert that never fires).
hf_check "alerts and dashboard read only metrics the services export" /usr/bin/python3 - \
    "$HF_RUN/rules.yaml" "$HF_ROOT/deploy/k8s/monitoring/grafana-dashboard.json" "$HF_RUN/scraped.txt" <<'PY'
import re, sys
exported = set(re.findall(r"^# TYPE (holdfast_\w+)", open(sys.argv[3]).read(), re.M))
bad = set()
for path in sys.argv[1:3]:
    for name in re.findall(r"holdfast_\w+", open(path).read()):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in exported and base not in exported:
            bad.add(name)
if bad:
    sys.exit("not exported by any service: " + ", ".join(sorted(bad)))
PY
hf_checks_done
