# chaos/k8s.sh - the chaos scenarios' target when --k8s: a deployment of
# deploy/k8s/ (overlays/example: namespace holdfast, CloudNativePG cluster
# holdfast-pg, Strimzi Kafka holdfast-kafka, Redis StatefulSet
# holdfast-redis) in the current kubectl context. Sourced by chaos/lib.sh.
#
# The driver runs here and reaches the cluster only through
# `kubectl port-forward` on 127.0.0.1: ingest's Service, each gateway pod
# (so clients spread over pods and move on when one dies), PostgreSQL's
# read-write Service. Faults are Kubernetes operations:
#   kill PART      pod deleted with --grace-period=0 --force: the API object
#                  goes at once, a replacement starts at once, but the kubelet
#                  still stops the old container with SIGTERM, then SIGKILL
#                  after 2 s: a gateway drains (1012) rather than being cut
#                  (1006). Redis: the StatefulSet scaled to 0 first, so it
#                  stays down until the repair scales it back
#   freeze redis   CLIENT PAUSE --pause ms ALL (a container's PID 1 cannot be
#                  SIGSTOPped from inside, and SIGSTOP needs node access):
#                  sockets stay open, no command is answered until it ends
#                  (an UNPAUSE would wait behind the pause too)
#   stop postgres  the CloudNativePG primary pod deleted; it fails over
#   kafka down     one broker pod deleted (Strimzi recreates it); the repair
#                  waits for the replacement pod to be Ready
# --dry-run prints the kubectl commands instead of running them (the
# deploy/k8s check verifies every resource they name exists).

CHAOS_K8S_FORWARDS=()

chaos_kubectl() {
    if ((CHAOS_DRY_RUN)); then
        echo "kubectl -n $CHAOS_NAMESPACE $*" >&2
        return 0
    fi
    kubectl -n "$CHAOS_NAMESPACE" "$@"
}

# chaos_k8s_forward NAME TARGET REMOTE_PORT [LOCAL_PORT]: a port-forward as a
# part (in this shell, so stopped by PID at the end); the local port in
# CHAOS_K8S_PORT. Three tries (a Service may have no ready pod for a while
# after a failover).
chaos_k8s_forward() {
    local name=$1 target=$2 remote=$3 tries
    CHAOS_K8S_PORT=${4:-$(hf_free_port)}
    for ((tries = 0; tries < 3; tries++)); do
        hf_spawn "$name" kubectl -n "$CHAOS_NAMESPACE" port-forward --address 127.0.0.1 \
            "$target" "$CHAOS_K8S_PORT:$remote"
        hf_wait_until 20 "port-forward $target" hf_port_in_use "$CHAOS_K8S_PORT" && return 0
        hf_stop "$name"
    done
    hf_die "kubectl port-forward $target failed (see $HF_RUN/$name.log)"
}

chaos_k8s_forward_pg() {
    chaos_k8s_forward pg-forward svc/holdfast-pg-rw 5432 "${CHAOS_K8S_PG_PORT:-}"
    CHAOS_K8S_PG_PORT=$CHAOS_K8S_PORT
}

chaos_k8s_secret() { # chaos_k8s_secret KEY: from the app user's Secret (CloudNativePG)
    kubectl -n "$CHAOS_NAMESPACE" get secret holdfast-pg-app -o "jsonpath={.data.$1}" | base64 -d
}

chaos_k8s_attach() {
    hf_init "$CHAOS_OUT/$CHAOS_NAME.parts"
    if ((CHAOS_DRY_RUN)); then
        chaos_kubectl port-forward svc/holdfast-ingest PORT:80
        chaos_kubectl port-forward "$(chaos_k8s_first_pod app.kubernetes.io/name=holdfast-gateway)" PORT:8090
        chaos_kubectl port-forward svc/holdfast-pg-rw PORT:5432
        chaos_kubectl get secret holdfast-pg-app
        chaos_kubectl get secret holdfast-auth
        return 0
    fi
    command -v kubectl >/dev/null || hf_die "--k8s needs kubectl"
    kubectl -n "$CHAOS_NAMESPACE" get deployment holdfast-gateway >/dev/null ||
        hf_die "no holdfast-gateway Deployment in namespace $CHAOS_NAMESPACE"
    local pods pod i=0 urls=()
    chaos_k8s_forward ingest-forward svc/holdfast-ingest 80
    HOLDFAST_INGEST_URL=http://127.0.0.1:$CHAOS_K8S_PORT
    pods=$(chaos_k8s_live_pods app.kubernetes.io/name=holdfast-gateway | head -n 4)
    [[ -n $pods ]] || hf_die "no running gateway pod"
    for pod in $pods; do
        i=$((i + 1))
        chaos_k8s_forward "gateway-forward-$i" "$pod" 8090
        urls+=("ws://127.0.0.1:$CHAOS_K8S_PORT/v1/ws")
    done
    CHAOS_GATEWAY_URLS="${urls[*]}"
    CHAOS_K8S_FIRST_GATEWAY=${pods%%$'\n'*}
    chaos_k8s_forward_pg
    HOLDFAST_PG_URL="postgresql://$(chaos_k8s_secret username):$(chaos_k8s_secret password)@127.0.0.1:$CHAOS_K8S_PG_PORT/$(chaos_k8s_secret dbname)"
    HF_PG_URL=$HOLDFAST_PG_URL
    chaos_k8s_tokens
}

# Tokens for the driver, unless given (HOLDFAST_PUBLISH_TOKEN and
# HOLDFAST_SUBSCRIBE_TOKEN): minted for an hour from the HS256 secret the
# services use, which never touches the disk.
chaos_k8s_tokens() {
    [[ -n ${HOLDFAST_PUBLISH_TOKEN:-} && -n ${HOLDFAST_SUBSCRIBE_TOKEN:-} ]] && return 0
    local secret
    secret=$(kubectl -n "$CHAOS_NAMESPACE" get secret holdfast-auth -o 'jsonpath={.data.secret}' |
        base64 -d) || hf_die "no Secret holdfast-auth: set HOLDFAST_PUBLISH_TOKEN and HOLDFAST_SUBSCRIBE_TOKEN"
    HOLDFAST_PUBLISH_TOKEN=$("$HF_BIN/holdfast-token" --key-file <(printf '%s' "$secret") \
        --sub chaos-driver --publish "chaos-*" --ttl 3600)
    HOLDFAST_SUBSCRIBE_TOKEN=$("$HF_BIN/holdfast-token" --key-file <(printf '%s' "$secret") \
        --sub chaos-driver --subscribe "chaos-*" --ttl 3600)
    export HOLDFAST_PUBLISH_TOKEN HOLDFAST_SUBSCRIBE_TOKEN
}

# chaos_k8s_live_pods SELECTOR: running pods not being deleted, pod/NAME each.
chaos_k8s_live_pods() {
    kubectl -n "$CHAOS_NAMESPACE" get pods -l "$1" --field-selector=status.phase=Running \
        -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{"\n"}{end}' |
        awk 'NF == 1 {print "pod/" $1}'
}

chaos_k8s_first_pod() { # chaos_k8s_first_pod SELECTOR
    if ((CHAOS_DRY_RUN)); then echo "pod/SELECTED-BY-$1"; return; fi
    local pod
    pod=$(chaos_k8s_live_pods "$1" | head -n 1)
    [[ -n $pod ]] || hf_die "no running pod for $1"
    echo "$pod"
}

# Deletes a pod at once, remembering its UID so the repair can wait for
# its replacement.
chaos_k8s_kill_pod() {
    [[ -n $1 ]] || hf_die "no pod to delete"
    hf_log "$CHAOS_NAME: deleting $1 (--grace-period=0 --force)"
    CHAOS_K8S_KILLED=$1 CHAOS_K8S_KILLED_UID=
    ((CHAOS_DRY_RUN)) || CHAOS_K8S_KILLED_UID=$(kubectl -n "$CHAOS_NAMESPACE" get "$1" \
        -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
    chaos_kubectl delete "$1" --grace-period=0 --force --wait=false --ignore-not-found
}

# A pod for SELECTOR other than the deleted one is Ready.
chaos_k8s_pod_replaced() {
    local pod uid
    for pod in $(chaos_k8s_live_pods "$1"); do
        uid=$(kubectl -n "$CHAOS_NAMESPACE" get "$pod" -o jsonpath='{.metadata.uid}')
        [[ $uid == "$CHAOS_K8S_KILLED_UID" ]] && continue
        kubectl -n "$CHAOS_NAMESPACE" wait "$pod" --for=condition=Ready --timeout=5s \
            >/dev/null 2>&1 && return 0
    done
    return 1
}

chaos_k8s_wait_replaced() { # chaos_k8s_wait_replaced SELECTOR (bounded: 5 minutes)
    if ((CHAOS_DRY_RUN)); then
        chaos_kubectl wait "pod/SELECTED-BY-$1" --for=condition=Ready
        return 0
    fi
    hf_wait_until 300 "a replacement for $CHAOS_K8S_KILLED Ready" chaos_k8s_pod_replaced "$1" ||
        hf_die "no replacement for $CHAOS_K8S_KILLED became Ready"
}

chaos_target_kill() {
    case $1 in
    redis)
        chaos_kubectl scale statefulset/holdfast-redis --replicas=0
        chaos_k8s_kill_pod pod/holdfast-redis-0
        ;;
    gateway-1)
        chaos_k8s_kill_pod "${CHAOS_K8S_FIRST_GATEWAY:-$(chaos_k8s_first_pod app.kubernetes.io/name=holdfast-gateway)}"
        ;;
    relay) chaos_k8s_kill_pod "$(chaos_k8s_first_pod app.kubernetes.io/name=holdfast-relay)" ;;
    postgres)
        chaos_k8s_kill_pod "$(chaos_k8s_first_pod cnpg.io/cluster=holdfast-pg,cnpg.io/instanceRole=primary)"
        ;;
    *) hf_die "no Kubernetes kill for $1" ;;
    esac
}

chaos_target_restore() {
    case $1 in
    redis)
        chaos_kubectl scale statefulset/holdfast-redis --replicas=1
        chaos_kubectl rollout status statefulset/holdfast-redis --timeout=120s
        ;;
    gateway-1) chaos_kubectl rollout status deployment/holdfast-gateway --timeout=120s ;;
    relay) chaos_kubectl rollout status deployment/holdfast-relay --timeout=120s ;;
    postgres)
        chaos_k8s_wait_replaced cnpg.io/cluster=holdfast-pg,cnpg.io/instanceRole=primary
        chaos_kubectl wait clusters.postgresql.cnpg.io/holdfast-pg --for=condition=Ready \
            --timeout=180s
        ((CHAOS_DRY_RUN)) || { hf_stop pg-forward; chaos_k8s_forward_pg; }
        ;;
    *) hf_die "no Kubernetes restore for $1" ;;
    esac
}

chaos_target_stop() {
    [[ $1 == postgres ]] || hf_die "no Kubernetes stop for $1"
    chaos_k8s_kill_pod "$(chaos_k8s_first_pod cnpg.io/cluster=holdfast-pg,cnpg.io/instanceRole=primary)"
}

chaos_target_freeze() {
    chaos_target_redis_cli CLIENT PAUSE "$(awk "BEGIN{print int($CHAOS_PAUSE * 1000)}")" ALL
}
# The pause ends by itself; wait it out (an UNPAUSE would queue behind it).
chaos_target_thaw() {
    ((CHAOS_DRY_RUN)) || hf_wait_until 60 "Redis answering again" chaos_target_redis_cli PING
}

chaos_target_kafka() {
    local brokers=strimzi.io/cluster=holdfast-kafka,strimzi.io/pool-name=broker
    if [[ $1 == down ]]; then
        chaos_k8s_kill_pod "$(chaos_k8s_first_pod "$brokers")"
    else
        chaos_k8s_wait_replaced "$brokers"
        chaos_kubectl wait kafkas.kafka.strimzi.io/holdfast-kafka --for=condition=Ready \
            --timeout=300s
    fi
}

chaos_target_redis_cli() { chaos_kubectl exec statefulset/holdfast-redis -- redis-cli "$@"; }

# kill-relay --replica keeps the Deployment's two replicas; without it the
# relay runs alone for the run.
chaos_k8s_relay_replicas() {
    chaos_kubectl scale deployment/holdfast-relay --replicas="$1"
    chaos_kubectl rollout status deployment/holdfast-relay --timeout=120s
}
