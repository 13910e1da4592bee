# chaos/k8s.sh - the chaos scenarios' target when --k8s: a deployment of
# deploy/k8s/ (overlays/example: namespace holdfast, CloudNativePG cluster
# holdfast-pg, Strimzi Kafka holdfast-kafka, Redis StatefulSet
# holdfast-redis) in the current kubectl context. Sourced by chaos/lib.sh.
#
# The driver runs here and reaches the cluster only through
# `kubectl port-forward` on 127.0.0.1: ingest's Service, each gateway pod
# (so clients spread over pods and move on when one dies), PostgreSQL's
# read-write Service. Faults are Kubernetes operations:
#   kill PART      pod deleted with --grace-period=0 --force (SIGKILL); Redis:
#                  the StatefulSet scaled to 0 first, so it stays down until
#                  the repair scales it back
#   freeze redis   CLIENT PAUSE ALL (a container's PID 1 cannot be SIGSTOPped
#                  from inside, and SIGSTOP needs node access): sockets stay
#                  open, no command is answered; the repair unpauses
#   stop postgres  the CloudNativePG primary pod deleted; it fails over
#   kafka down     one broker pod deleted (Strimzi recreates it)
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
# part (stopped by PID at the end); prints the local port.
chaos_k8s_forward() {
    local name=$1 target=$2 remote=$3 local_port=${4:-}
    [[ -n $local_port ]] || local_port=$(hf_free_port)
    hf_spawn "$name" kubectl -n "$CHAOS_NAMESPACE" port-forward --address 127.0.0.1 "$target" \
        "$local_port:$remote"
    hf_wait_until 20 "port-forward $target" hf_port_in_use "$local_port" ||
        hf_die "kubectl port-forward $target failed (see $HF_RUN/$name.log)"
    echo "$local_port"
}

chaos_k8s_forward_pg() {
    CHAOS_K8S_PG_PORT=$(chaos_k8s_forward pg-forward svc/holdfast-pg-rw 5432 "${CHAOS_K8S_PG_PORT:-}")
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
        return 0
    fi
    command -v kubectl >/dev/null || hf_die "--k8s needs kubectl"
    kubectl -n "$CHAOS_NAMESPACE" get deployment holdfast-gateway >/dev/null ||
        hf_die "no holdfast-gateway Deployment in namespace $CHAOS_NAMESPACE"
    local port pods pod i=0 urls=()
    port=$(chaos_k8s_forward ingest-forward svc/holdfast-ingest 80)
    HOLDFAST_INGEST_URL=http://127.0.0.1:$port
    pods=$(kubectl -n "$CHAOS_NAMESPACE" get pods -l app.kubernetes.io/name=holdfast-gateway \
        --field-selector=status.phase=Running -o name | head -n 4)
    [[ -n $pods ]] || hf_die "no running gateway pod"
    for pod in $pods; do
        i=$((i + 1))
        port=$(chaos_k8s_forward "gateway-forward-$i" "$pod" 8090)
        urls+=("ws://127.0.0.1:$port/v1/ws")
    done
    CHAOS_GATEWAY_URLS="${urls[*]}"
    CHAOS_K8S_FIRST_GATEWAY=${pods%%$'\n'*}
    chaos_k8s_forward_pg
    HOLDFAST_PG_URL="postgresql://$(chaos_k8s_secret username):$(chaos_k8s_secret password)@127.0.0.1:$CHAOS_K8S_PG_PORT/$(chaos_k8s_secret dbname)"
    HF_PG_URL=$HOLDFAST_PG_URL
}

chaos_k8s_first_pod() { # chaos_k8s_first_pod SELECTOR
    if ((CHAOS_DRY_RUN)); then echo "pod/SELECTED-BY-$1"; return; fi
    kubectl -n "$CHAOS_NAMESPACE" get pods -l "$1" --field-selector=status.phase=Running \
        -o name | head -n 1
}

chaos_k8s_kill_pod() {
    hf_log "$CHAOS_NAME: deleting $1 with SIGKILL (--grace-period=0 --force)"
    chaos_kubectl delete "$1" --grace-period=0 --force --wait=false
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
        chaos_kubectl wait cluster/holdfast-pg --for=condition=Ready --timeout=180s
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
    local ms
    ms=$(awk "BEGIN{print int(($CHAOS_PAUSE + 60) * 1000)}")
    chaos_target_redis_cli CLIENT PAUSE "$ms" ALL
}
chaos_target_thaw() { chaos_target_redis_cli CLIENT UNPAUSE; }

chaos_target_kafka() {
    local state=$1
    if [[ $state == down ]]; then
        chaos_k8s_kill_pod "$(chaos_k8s_first_pod strimzi.io/cluster=holdfast-kafka,strimzi.io/pool-name=broker)"
    else
        chaos_kubectl wait kafka/holdfast-kafka --for=condition=Ready --timeout=300s
    fi
}

chaos_target_redis_cli() { chaos_kubectl exec statefulset/holdfast-redis -- redis-cli "$@"; }

# kill-relay --replica keeps the Deployment's two replicas; without it the
# relay runs alone for the run.
chaos_k8s_relay_replicas() {
    chaos_kubectl scale deployment/holdfast-relay --replicas="$1"
    chaos_kubectl rollout status deployment/holdfast-relay --timeout=120s
}
