# lib.sh - start and stop real PostgreSQL, Redis, the dev Kafka broker and
# the Holdfast services on loopback, for tests and for the local stack.
#
# Source it, then call hf_init RUN_DIR. Every part runs in the foreground
# of a background job; its PID goes to RUN_DIR/<part>.pid and its output
# to RUN_DIR/<part>.log. hf_stop <part> stops one part by that PID;
# hf_stop_all stops everything this shell started (tests trap it on EXIT).
# Ports are picked free on 127.0.0.1 below the kernel's ephemeral range.

HF_ROOT=${HF_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
HF_BIN=${HF_BIN:-$HF_ROOT/build/bin}
HF_PG_BIN=${HF_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
HF_STARTED=()

hf_log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
hf_die() {
    hf_log "FATAL: $*"
    exit 1
}

# hf_init RUN_DIR: where pid files, logs and data go.
HF_SUPPORT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

hf_init() {
    HF_RUN=$1
    mkdir -p "$HF_RUN"
    HF_RUN=$(cd "$HF_RUN" && pwd)
}

# hf_test_begin BUILD_DIR: the start of every integration test: binaries
# from BUILD_DIR/bin, a fresh run folder, and on exit everything started
# stopped by PID and the folder removed (kept when KEEP is set).
hf_test_begin() {
    BUILD=$1
    HF_BIN=$(cd "$BUILD" && pwd)/bin
    hf_init "$(mktemp -d /tmp/holdfast-test.XXXXXX)"
    trap 'hf_stop_all; [[ -n ${KEEP:-} ]] && echo "kept $HF_RUN" >&2 || rm -rf "$HF_RUN"' EXIT
}

hf_port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# hf_free_port: prints a port nothing listens on and no test on this
# machine was given in the last HF_PORT_HOLD_S seconds. Tests run two at a
# time (make test), and a part killed and started again on its port (chaos,
# outages) leaves it unbound meanwhile: the registry, shared under flock,
# keeps another test from taking it then.
HF_PORT_REGISTRY=${HF_PORT_REGISTRY:-/tmp/holdfast-ports.$(id -u)}
HF_PORT_HOLD_S=900
hf_free_port() {
    local port i now lock
    exec {lock}>>"$HF_PORT_REGISTRY.lock"
    flock "$lock"
    now=$(date +%s)
    touch "$HF_PORT_REGISTRY"
    awk -v old=$((now - HF_PORT_HOLD_S)) '$2 > old' "$HF_PORT_REGISTRY" >"$HF_PORT_REGISTRY.new" &&
        mv "$HF_PORT_REGISTRY.new" "$HF_PORT_REGISTRY"
    for i in $(seq 1 200); do
        port=$((20000 + RANDOM % 12000))
        grep -q "^$port " "$HF_PORT_REGISTRY" && continue
        hf_port_in_use "$port" && continue
        echo "$port $now" >>"$HF_PORT_REGISTRY"
        exec {lock}>&-
        echo "$port"
        return 0
    done
    exec {lock}>&-
    hf_die "no free port found"
}

hf_pid() { cat "$HF_RUN/$1.pid" 2>/dev/null; }

# hf_alive PART: its PID runs (a zombie, left when nobody reaps it, does not count).
hf_alive() {
    local pid state
    pid=$(hf_pid "$1") || return 1
    [[ -n $pid ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# hf_pid_gone PID: true when PID has exited: gone, or a zombie its parent
# has not reaped yet (which may happen at any moment, so /proc is read once).
hf_pid_gone() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || true
    [[ -z $state || $state == Z ]]
}

# hf_spawn PART CMD...: runs CMD in the background, logging to PART.log.
hf_spawn() {
    local part=$1
    shift
    "$@" >>"$HF_RUN/$part.log" 2>&1 &
    echo $! >"$HF_RUN/$part.pid"
    HF_STARTED+=("$part")
}

# hf_wait_until TIMEOUT_S DESCRIPTION CMD...: polls CMD until it succeeds.
hf_wait_until() {
    local timeout=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || {
            hf_log "timed out after ${timeout}s waiting for $what"
            return 1
        }
        sleep 0.1
    done
}

# hf_stop PART [SIGNAL] [TIMEOUT_S]: signals the part's PID (default TERM;
# INT for PostgreSQL, its "fast" shutdown that does not wait for clients to
# leave), waits for it to exit, then KILLs it if it did not.
hf_stop() {
    local part=$1 sig=${2:-} timeout=${3:-15} pid deadline
    [[ -n $sig ]] || { [[ $part == postgres ]] && sig=INT || sig=TERM; }
    pid=$(hf_pid "$part") || return 0
    [[ -n $pid ]] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while hf_alive "$part"; do
        if ((SECONDS >= deadline)); then
            hf_log "$part (pid $pid) did not stop on SIG$sig; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            # Stopped processes must be continued to die.
            kill -CONT "$pid" 2>/dev/null || true
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || true
    rm -f "$HF_RUN/$part.pid"
}

# hf_wait_exit PART: waits for the part (a child of this shell, so not
# from inside $(...)) and sets HF_EXIT_STATUS to its exit status.
hf_wait_exit() {
    local pid
    pid=$(hf_pid "$1")
    HF_EXIT_STATUS=0
    wait "$pid" 2>/dev/null || HF_EXIT_STATUS=$?
    rm -f "$HF_RUN/$1.pid"
}

hf_stop_all() {
    local i
    for ((i = ${#HF_STARTED[@]} - 1; i >= 0; i--)); do
        hf_stop "${HF_STARTED[$i]}" "" 10
    done
    HF_STARTED=()
}

# PostgreSQL refuses to run as root: as root it runs as the "postgres"
# user, and its data lives where that user can reach it.
# (A prefix, not a function: a background job of a function would be a
# subshell, and its PID not the server's.)
HF_AS_PG=()
if [[ $(id -u) == 0 ]]; then HF_AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --); fi

# hf_pg_datadir DIR: prints the directory PostgreSQL's data should use for
# DIR (DIR itself, or, as root when "postgres" cannot reach DIR, a place
# under /var/tmp that DIR/postgres links to).
hf_pg_datadir() {
    local dir=$1
    if [[ $(id -u) != 0 ]] || setpriv --reuid=postgres --regid=postgres --init-groups -- test -x "$(dirname "$dir")" 2>/dev/null; then
        echo "$dir"
        return
    fi
    local alt
    alt=/var/tmp/holdfast-pg-$(printf '%s' "$dir" | md5sum | cut -c1-12)
    mkdir -p "$alt"
    chown postgres: "$alt"
    [[ -L $dir ]] || { rm -rf "$dir" && ln -s "$alt" "$dir"; }
    echo "$alt"
}

# hf_pg_start [PORT] [EXTRA -c settings...]: initialises RUN_DIR/postgres if
# new, starts it on 127.0.0.1:PORT, creates database holdfast and sets
# HF_PG_URL. Tests pass fsync=off; the local stack keeps durability on.
hf_pg_start() {
    local port=${1:-$(hf_free_port)}
    shift || true
    local data
    data=$(hf_pg_datadir "$HF_RUN/postgres")
    if [[ ! -s $data/PG_VERSION ]]; then
        mkdir -p "$data"
        if [[ $(id -u) == 0 ]]; then chown postgres: "$data"; fi
        "${HF_AS_PG[@]}" "$HF_PG_BIN/initdb" -D "$data" -U holdfast --auth=trust -E UTF8 --locale=C.UTF-8 \
            >>"$HF_RUN/postgres.log" 2>&1 || hf_die "initdb failed (see $HF_RUN/postgres.log)"
    fi
    # wal_level logical: the relay reads new events from a replication slot
    local opts=(-c listen_addresses=127.0.0.1 -c "port=$port" -c unix_socket_directories=
        -c max_connections=200 -c logging_collector=off -c wal_level=logical)
    local extra
    for extra in "$@"; do opts+=(-c "$extra"); done
    hf_spawn postgres "${HF_AS_PG[@]}" "$HF_PG_BIN/postgres" -D "$data" "${opts[@]}"
    HF_PG_PORT=$port
    HF_PG_URL="postgresql://holdfast@127.0.0.1:$port/holdfast"
    hf_wait_until 60 "PostgreSQL on port $port" "$HF_PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -q ||
        hf_die "PostgreSQL did not start (see $HF_RUN/postgres.log)"
    if ! psql -h 127.0.0.1 -p "$port" -U holdfast -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'holdfast'" | grep -q 1; then
        psql -h 127.0.0.1 -p "$port" -U holdfast -d postgres -qc "CREATE DATABASE holdfast" >/dev/null
    fi
}

# hf_psql SQL...: runs SQL against HF_PG_URL, unaligned tuples only.
hf_psql() { psql "$HF_PG_URL" -X -v ON_ERROR_STOP=1 -qtA "$@"; }

hf_migrate() {
    "$HF_BIN/holdfast-migrate" --pg-url "$HF_PG_URL" "$@" >>"$HF_RUN/migrate.log" 2>&1 ||
        hf_die "holdfast-migrate failed (see $HF_RUN/migrate.log)"
}

# hf_redis_start [PORT]: Redis with a password (requirepass), random and
# kept in RUN_DIR/redis.password (mode 600) so that a restart on the same
# port, and the local stack across runs, keep it. Sets HF_REDIS_PASSWORD,
# HF_REDIS_URL (redis://default:PASSWORD@127.0.0.1:PORT, which redis-cli -u
# takes too) and exports REDISCLI_AUTH, so plain redis-cli calls
# authenticate.
hf_redis_start() {
    local port=${1:-$(hf_free_port)}
    mkdir -p "$HF_RUN/redis"
    if [[ ! -s $HF_RUN/redis.password ]]; then
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$HF_RUN/redis.password")
    fi
    HF_REDIS_PASSWORD=$(cat "$HF_RUN/redis.password")
    export REDISCLI_AUTH=$HF_REDIS_PASSWORD
    # The password goes in a config file, not on the command line (ps shows that).
    (umask 077 && printf 'requirepass "%s"\n' "$HF_REDIS_PASSWORD" >"$HF_RUN/redis/auth.conf")
    hf_spawn redis redis-server "$HF_RUN/redis/auth.conf" --bind 127.0.0.1 --port "$port" \
        --dir "$HF_RUN/redis" --save "" --appendonly no --daemonize no --protected-mode yes
    HF_REDIS_PORT=$port
    HF_REDIS_URL="redis://default:$HF_REDIS_PASSWORD@127.0.0.1:$port"
    hf_wait_until 30 "Redis on port $port" hf_redis_pong "$port" ||
        hf_die "Redis did not start (see $HF_RUN/redis.log)"
}

# hf_redis_pong PORT: Redis there answers PING (redis-cli exits 0 on an
# error reply too, so the answer is read).
hf_redis_pong() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }

# hf_kafka_start [PARTITIONS] [TOPIC]: the dev broker; sets HF_KAFKA_BROKERS,
# HF_KAFKA_CONTROL (host:port of its control port) and HF_TOPIC.
hf_kafka_start() {
    local partitions=${1:-8}
    HF_TOPIC=${2:-holdfast.events}
    rm -f "$HF_RUN/kafka.bootstrap"
    hf_spawn kafka "$HF_BIN/holdfast-devbroker" --partitions "$partitions" --topic "$HF_TOPIC" \
        --bootstrap-file "$HF_RUN/kafka.bootstrap"
    hf_wait_until 30 "the dev Kafka broker" test -s "$HF_RUN/kafka.bootstrap" ||
        hf_die "dev broker did not start (see $HF_RUN/kafka.log)"
    HF_KAFKA_BROKERS=$(cat "$HF_RUN/kafka.bootstrap")
    HF_KAFKA_CONTROL=$(sed -n 's/^control=//p' "$HF_RUN/kafka.log" | tail -n 1)
}

# hf_kafka_control COMMAND: sends one line to the dev broker's control port.
hf_kafka_control() {
    local host=${HF_KAFKA_CONTROL%:*} port=${HF_KAFKA_CONTROL##*:} reply
    exec 7<>"/dev/tcp/$host/$port" || return 1
    printf '%s\n' "$*" >&7
    IFS= read -r -t 5 reply <&7 || true
    exec 7>&-
    [[ $reply == ok* ]]
}

hf_http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

# Services start with auth off (each says so in a warning) unless HF_AUTH
# is true: the tests of auth (035) and the local stack turn it on, with
# HOLDFAST_AUTH_KEY_FILE in the environment.
hf_auth_flag() { echo "--auth=${HF_AUTH:-false}"; }

# hf_ingest_start [PORT] [EXTRA FLAGS...]: sets HF_INGEST_URL.
hf_ingest_start() {
    local port=${1:-$(hf_free_port)}
    shift || true
    hf_spawn ingest "$HF_BIN/holdfast-ingest" --port "$port" --pg-url "$HF_PG_URL" \
        "$(hf_auth_flag)" "$@"
    HF_INGEST_PORT=$port
    HF_INGEST_URL="http://127.0.0.1:$port"
    hf_wait_until 30 "ingest /livez" hf_http_ok "$HF_INGEST_URL/livez" ||
        hf_die "ingest did not start (see $HF_RUN/ingest.log)"
    # ready once a writer holds a PostgreSQL connection (when PostgreSQL runs;
    # HF_INGEST_WAIT_READY=0 for a test of an ingest that must stay unready)
    if [[ ${HF_INGEST_WAIT_READY:-1} == 1 && -n ${HF_PG_PORT:-} ]] &&
        "$HF_PG_BIN/pg_isready" -h 127.0.0.1 -p "$HF_PG_PORT" -q; then
        hf_wait_until 30 "ingest /readyz" hf_http_ok "$HF_INGEST_URL/readyz" ||
            hf_die "ingest is not ready (see $HF_RUN/ingest.log)"
    fi
}

# hf_relay_launch NAME PORT [FLAGS...]: holdfast-relay as process NAME
# (its log: $HF_RUN/NAME.log) with its HTTP port PORT, against $HF_PG_URL
# and $HF_KAFKA_BROKERS; FLAGS follow (relay id, topic, Redis, ...). The
# one launch line of the tests, benchmarks, chaos scenarios and the stack.
hf_relay_launch() {
    local name=$1 port=$2
    shift 2
    hf_spawn "$name" "$HF_BIN/holdfast-relay" --port "$port" --pg-url "$HF_PG_URL" \
        --kafka-brokers "$HF_KAFKA_BROKERS" "$@"
}

# hf_relay_spawn NAME [EXTRA FLAGS...]: a relay with id NAME and the
# default timings (lease TTL 2 s, renew 300 ms, produce timeout 1 s); the
# first leads, later ones stand by; sets
# PORT_<NAME> to its HTTP port. hf_relay_start also waits for /livez.
hf_relay_spawn() {
    local name=$1 port
    shift
    port=$(hf_free_port)
    hf_relay_launch "$name" "$port" --topic "${HF_TOPIC:-holdfast.events}" \
        --redis-url "$HF_REDIS_URL" --relay-id "$name" "$@"
    printf -v "PORT_$name" '%s' "$port"
}
hf_relay_start() {
    local port
    hf_relay_spawn "$@"
    port=PORT_$1
    hf_wait_until 30 "$1 /livez" hf_http_ok "http://127.0.0.1:${!port}/livez" ||
        hf_die "$1 did not start (see $HF_RUN/$1.log)"
}

# hf_relay_leads NAME: NAME holds the relay lease, so it moves every partition.
hf_relay_leads() {
    [[ $(hf_psql -c "SELECT owner FROM holdfast.relay_leader WHERE expires_at > now()") == "$1" ]]
}

# hf_unrelayed [WHERE]: events with neither an offset recorded nor a dead
# letter (optionally only those matching WHERE, a condition on e).
hf_unrelayed() {
    hf_psql -c "SELECT count(*) FROM holdfast.events e
        WHERE NOT EXISTS (SELECT 1 FROM holdfast.event_offsets o WHERE o.event_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM holdfast.dead_letters d WHERE d.event_id = e.id)
          ${1:+AND ($1)}"
}
# hf_all_relayed: every event is in Kafka with its offset recorded (or dead-lettered).
hf_all_relayed() { [[ $(hf_unrelayed) == 0 ]]; }

# hf_stream_watch: a logical slot of its own (test_decoding) that sees the
# WAL the relay's slot reads; hf_stream_ids then prints the ids of the
# events inserted since, in stream (commit) order, committed transactions
# only, without consuming them.
hf_stream_watch() {
    hf_psql -c "SELECT pg_create_logical_replication_slot('hf_test_watch', 'test_decoding')" >/dev/null
}
hf_stream_ids() {
    hf_psql -c "SELECT substring(data FROM 'id\[uuid\]:''([0-9a-f-]+)''')
        FROM pg_logical_slot_peek_changes('hf_test_watch', NULL, NULL)
        WHERE data LIKE 'table holdfast.events: INSERT:%'"
}

# hf_pipeline_start [PARTITIONS]: what every relay test stands on: PostgreSQL
# (fsync off: tests, not durability), the schema with PARTITIONS (default
# 8) partitions, Redis, and the dev broker with a topic of that many.
hf_pipeline_start() {
    local partitions=${1:-8}
    hf_pg_start "" fsync=off
    hf_migrate
    if ((partitions != 8)); then
        hf_psql -c "SELECT holdfast.set_partition_count($partitions)" >/dev/null
    fi
    hf_redis_start
    hf_kafka_start "$partitions" holdfast.events
}

# hf_bench_pipeline_start: what the benchmarks stand on: PostgreSQL with its
# durable defaults (fsync on), the schema, Redis, the dev broker (8
# partitions) and one relay "bench", leading.
hf_bench_pipeline_start() {
    hf_pg_start ""
    hf_migrate
    hf_redis_start
    hf_kafka_start 8 holdfast.events
    hf_relay_launch relay 0 --redis-url "$HF_REDIS_URL" --relay-id bench
    hf_wait_until 30 "the relay to lead" hf_relay_leads bench || hf_die "relay did not start"
}

# hf_publish_numbered PREFIX CHANNELS N: N events committed in one
# transaction, round-robin over channels PREFIX:0..CHANNELS-1, payload
# {"seq":K} with K counting on from HF_NEXT_SEQ, so that relay_verify.py
# can check each channel's order.
HF_NEXT_SEQ=1
hf_publish_numbered() {
    local prefix=$1 channels=$2 n=$3 last=$((HF_NEXT_SEQ + $3 - 1))
    hf_psql -c "SELECT count(*) FROM holdfast._append(
        array(SELECT '$prefix:' || (g % $channels) FROM generate_series($HF_NEXT_SEQ, $last) g),
        array_fill(NULL::text, ARRAY[$n]),
        array(SELECT convert_to('{\"seq\":' || g || '}', 'UTF8') FROM generate_series($HF_NEXT_SEQ, $last) g),
        NULL, NULL)" >/dev/null
    HF_NEXT_SEQ=$((last + 1))
}

# hf_worker_channels PREFIX WORKERS CHANNELS: the channels publish_ingest.py
# workers 0..WORKERS-1 publish to (PREFIX:w:c), comma-separated.
hf_worker_channels() {
    local w c list=
    for ((w = 0; w < $2; w++)); do for ((c = 0; c < $3; c++)); do list+="$1:$w:$c,"; done; done
    echo "${list%,}"
}

# hf_publishers_start WORKERS COUNT CHANNELS [publish_ingest.py FLAGS...]:
# WORKERS publishers through ingest in the background, worker w sending
# COUNT numbered events over its CHANNELS channels; hf_publishers_wait
# WORKERS checks that each had all its events accepted.
hf_publishers_start() {
    local workers=$1 count=$2 channels=$3 w
    shift 3
    for ((w = 0; w < workers; w++)); do
        python3 "$HF_SUPPORT/publish_ingest.py" --url "$HF_INGEST_URL" --worker "$w" --count "$count" \
            --channels "$channels" "$@" >"$HF_RUN/publish.$w.out" 2>&1 &
        echo $! >"$HF_RUN/publish.$w.pid"
    done
}
hf_publishers_wait() {
    local w rc
    for ((w = 0; w < $1; w++)); do
        rc=0
        wait "$(cat "$HF_RUN/publish.$w.pid")" || rc=$?
        hf_check_eq "publisher $w had all its events accepted" 0 "$rc"
    done
}

# hf_metric PORT NAME: the value of an unlabelled metric at 127.0.0.1:PORT/metrics.
hf_metric() { curl -fsS "http://127.0.0.1:$1/metrics" | sed -n "s/^$2 //p"; }

# hf_tap_start FILE [EXTRA FLAGS...]: holdfast-tap writing Redis messages to
# FILE as JSON lines, as part "tap"; returns once it is subscribed.
hf_tap_start() {
    local file=$1
    shift
    rm -f "$HF_RUN/tap.log"
    hf_spawn tap "$HF_BIN/holdfast-tap" --redis-url "$HF_REDIS_URL" --out "$file" "$@"
    hf_wait_until 10 "holdfast-tap" grep -q '^ready' "$HF_RUN/tap.log" ||
        hf_die "holdfast-tap did not subscribe (see $HF_RUN/tap.log)"
}

# hf_relay_verify [VERIFY FLAGS...]: dumps events, dead letters and the
# whole topic, then runs relay_verify.py on them (with the tap file if
# given as --tap FILE). Prints the summary; fails on any violation.
hf_relay_verify() {
    hf_psql -F $'\t' -c "SELECT id, channel, partition, kafka_offset,
        CASE WHEN content_type = 'application/json'
        THEN coalesce(convert_from(payload, 'UTF8')::jsonb->>'seq', '') ELSE '' END FROM holdfast.event_log" >"$HF_RUN/verify.pg"
    hf_psql -c "SELECT event_id FROM holdfast.dead_letters" >"$HF_RUN/verify.dead"
    timeout 60 kcat -C -b "$HF_KAFKA_BROKERS" -t "${HF_TOPIC:-holdfast.events}" -o beginning -e -q \
        -f '%p\t%o\t%k\t%h\n' >"$HF_RUN/verify.kafka" || return 1
    python3 "$HF_SUPPORT/relay_verify.py" --pg "$HF_RUN/verify.pg" --kafka "$HF_RUN/verify.kafka" \
        --dead "$HF_RUN/verify.dead" "$@"
}

# hf_gateway_start NAME [EXTRA FLAGS...]: a gateway on Redis and the dev
# broker, with a short Redis heartbeat (ping 200 ms, timeout 1 s); sets
# PORT_<NAME> and WS_<NAME> (its ws:// URL) and waits for /readyz.
hf_gateway_start() {
    local name=$1 port
    shift
    port=$(hf_free_port)
    hf_spawn "$name" "$HF_BIN/holdfast-gateway" --port "$port" --redis-url "$HF_REDIS_URL" \
        --kafka-brokers "$HF_KAFKA_BROKERS" --topic "${HF_TOPIC:-holdfast.events}" \
        --redis-ping-interval 200ms --redis-ping-timeout 1s --redis-retry 200ms \
        --workers "${HF_GATEWAY_WORKERS:-1}" "$(hf_auth_flag)" "$@"
    printf -v "PORT_$name" '%s' "$port"
    printf -v "WS_$name" '%s' "ws://127.0.0.1:$port/v1/ws"
    hf_wait_until 30 "$name /readyz" hf_http_ok "http://127.0.0.1:$port/readyz" ||
        hf_die "$name did not start (see $HF_RUN/$name.log)"
}

# hf_ws_clients_start [ws_clients.py FLAGS...]: WebSocket clients (Python
# websockets) as part "wsclients", results in $HF_RUN/ws.json; returns once
# every client's subscriptions are confirmed. hf_ws_clients_finish tells
# them to end once idle and waits for them.
hf_ws_clients_start() {
    rm -f "$HF_RUN/ws.ready" "$HF_RUN/ws.stop" "$HF_RUN/ws.json"
    hf_spawn wsclients /usr/bin/python3 "$HF_SUPPORT/ws_clients.py" --ready "$HF_RUN/ws.ready" \
        --stop "$HF_RUN/ws.stop" --out "$HF_RUN/ws.json" "$@"
    hf_wait_until 60 "WebSocket clients subscribed" test -s "$HF_RUN/ws.ready" ||
        hf_die "clients did not subscribe (see $HF_RUN/wsclients.log)"
}
hf_ws_clients_finish() {
    touch "$HF_RUN/ws.stop"
    hf_wait_exit wsclients
    [[ -s $HF_RUN/ws.json ]] || hf_die "clients wrote no result (see $HF_RUN/wsclients.log)"
}

# hf_ws_verify [ws_verify.py FLAGS...]: the clients' results against PostgreSQL.
hf_ws_verify() {
    hf_psql -F $'\t' -c "SELECT channel, kafka_offset,
        CASE WHEN content_type = 'application/json'
        THEN coalesce(convert_from(payload, 'UTF8')::jsonb->>'seq', '') ELSE '' END
        FROM holdfast.event_log WHERE kafka_offset IS NOT NULL" >"$HF_RUN/ws_verify.pg"
    /usr/bin/python3 "$HF_SUPPORT/ws_verify.py" --pg "$HF_RUN/ws_verify.pg" \
        --results "$HF_RUN/ws.json" "$@"
}

# --- assertions for tests -------------------------------------------------

HF_CHECKS=0
HF_FAILS=0

hf_check() { # hf_check DESCRIPTION CMD...
    local what=$1
    shift
    HF_CHECKS=$((HF_CHECKS + 1))
    if "$@"; then
        return 0
    fi
    HF_FAILS=$((HF_FAILS + 1))
    hf_log "CHECK FAILED: $what"
    return 0
}

hf_check_eq() { # hf_check_eq DESCRIPTION EXPECTED ACTUAL
    HF_CHECKS=$((HF_CHECKS + 1))
    if [[ "$2" == "$3" ]]; then
        return 0
    fi
    HF_FAILS=$((HF_FAILS + 1))
    hf_log "CHECK FAILED: $1: expected [$2], got [$3]"
}

# hf_checks_done: stops everything (so sanitizer reports on exit are
# written), counts any AddressSanitizer/UBSan report in the parts' logs as
# a failure, prints the tally and fails the test if anything failed.
hf_checks_done() {
    hf_stop_all
    local reports
    reports=$(grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$HF_RUN"/*.log 2>/dev/null || true)
    hf_check_eq "no sanitizer reports in the parts' logs" "" "$reports"
    echo "$((HF_CHECKS - HF_FAILS)) passed, $HF_FAILS failed"
    ((HF_FAILS == 0))
}
