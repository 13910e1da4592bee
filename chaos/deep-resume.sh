#!/usr/bin/env bash
# deep-resume: clients resuming from far back while the live subscribers
# of the same partitions keep their latency. Before the run, a backlog of
# --backlog events on --deep-clients channels (each on a partition of its
# own) is published through ingest; the fault is that many clients
# (Python websockets: tests/support/ws_deep_resume.py) that each subscribe
# to a backlog channel with `since` before its first event, read its whole
# history, check it against PostgreSQL (recovered:true, every offset, in
# order, chained), and start over on the next gateway until the repair.
# The driver's live clients must meanwhile get every event with their
# usual latency: a gateway reads such resumes through its deep reader
# (docs/gateway.md, Deep reads), never rewinding the reader the live
# subscribers use. For the resumes to count as deep, a channel's backlog
# must exceed the gateways' --kafka-deep-after (10,000 records by default:
# the default backlog is 12,000 per channel; `--short` publishes 1,500 per
# channel, so 096 lowers the bound). The dev broker keeps about 5 MiB per
# partition (librdkafka's mock cluster drops older records), some 14,000
# of these events: a larger backlog would no longer be all in Kafka.
source "$(dirname "$0")/lib.sh"
CHAOS_BACKLOG=24000
CHAOS_DEEP_CLIENTS=2
CHAOS_REDIS_DOWN=0
CHAOS_HELP="  --backlog N        events published before the run over the resumed channels (default $CHAOS_BACKLOG)
  --deep-clients N   clients resuming from far back during the fault, one channel each (default $CHAOS_DEEP_CLIENTS)
  --redis-down       Redis is also killed for the fault (restarted at the repair): every live
                     subscriber then reads Kafka at the head while the deep resumes run"
chaos_option() {
    CHAOS_OPTION_TAKES_VALUE=1
    case $1 in
    --redis-down) CHAOS_REDIS_DOWN=1 CHAOS_OPTION_TAKES_VALUE=0 ;;
    --backlog) CHAOS_BACKLOG=$2 ;;
    --deep-clients) CHAOS_DEEP_CLIENTS=$2 ;;
    *) return 1 ;;
    esac
}
for arg in "$@"; do [[ $arg == --short ]] && CHAOS_BACKLOG=3000; done

chaos_backlog_relayed() {
    [[ $(hf_psql -c "SELECT count(*) FROM holdfast.event_log
        WHERE channel LIKE '$CHAOS_BACKLOG_PREFIX:%' AND kafka_offset IS NULL") == 0 ]]
}

# A channel prefix whose channels PREFIX:0:0 .. :N-1 (publish_ingest.py's
# names) are all on different partitions (bounded: 100 tries).
chaos_backlog_prefix() {
    local base="chaos-backlog-$(date +%s)-$$" try
    for ((try = 0; try < 100; try++)); do
        if [[ $(hf_psql -c "SELECT count(DISTINCT holdfast.partition_for('$base-$try:0:' || c))
            FROM generate_series(0, $CHAOS_DEEP_CLIENTS - 1) c") == "$CHAOS_DEEP_CLIENTS" ]]; then
            echo "$base-$try"
            return 0
        fi
    done
    hf_die "no $CHAOS_DEEP_CLIENTS channels on distinct partitions found"
}

chaos_setup() {
    ((CHAOS_DRY_RUN)) && return 0 # nothing but publishing and reading: no kubectl
    CHAOS_BACKLOG_PREFIX=$(chaos_backlog_prefix)
    hf_log "$CHAOS_NAME: publishing a backlog of $CHAOS_BACKLOG events on $CHAOS_DEEP_CLIENTS channels"
    python3 "$HF_ROOT/tests/support/publish_ingest.py" --url "$HOLDFAST_INGEST_URL" \
        --prefix "$CHAOS_BACKLOG_PREFIX" --worker 0 --count "$CHAOS_BACKLOG" \
        --channels "$CHAOS_DEEP_CLIENTS" --batch 500 --deadline 300 >"$HF_RUN/backlog.log" 2>&1 ||
        hf_die "the backlog was not published (see $HF_RUN/backlog.log)"
    hf_wait_until 300 "the backlog relayed" chaos_backlog_relayed ||
        hf_die "the backlog was not relayed in time"
    # Each channel's history as PostgreSQL has it: what every round must bring.
    hf_psql -c "SELECT json_agg(json_build_object('channel', channel, 'since', since,
            'epoch', epoch, 'offsets', offsets) ORDER BY channel)
        FROM (SELECT channel, min(kafka_offset) - 1 AS since, min(epoch) AS epoch,
                     json_agg(kafka_offset ORDER BY kafka_offset) AS offsets
              FROM holdfast.event_log WHERE channel LIKE '$CHAOS_BACKLOG_PREFIX:%'
              GROUP BY channel) c" >"$HF_RUN/deep-expect.json"
    hf_log "$CHAOS_NAME: backlog relayed; records per partition: $(hf_psql -c "SELECT string_agg(
        partition || '=' || n, ' ') FROM (SELECT partition, count(*) AS n FROM holdfast.event_log
        WHERE epoch = (SELECT epoch FROM holdfast.meta) GROUP BY partition ORDER BY partition) p")"
}

chaos_inject() {
    ((CHAOS_REDIS_DOWN)) && chaos_target_kill redis
    ((CHAOS_DRY_RUN)) && return 0
    rm -f "$HF_RUN/deep.stop" "$HF_RUN/deep.json"
    # Niced: on one machine the resuming clients' own CPU (Python parsing
    # thousands of events a second) would otherwise be what slows the live
    # path; real clients run elsewhere.
    hf_spawn deep-resume nice -n 19 /usr/bin/python3 "$HF_ROOT/tests/support/ws_deep_resume.py" \
        --urls "$(tr ' ' , <<<"$CHAOS_GATEWAY_URLS")" --expect "$HF_RUN/deep-expect.json" \
        --clients "$CHAOS_DEEP_CLIENTS" --stop "$HF_RUN/deep.stop" --out "$HF_RUN/deep.json" \
        --deadline "$(awk "BEGIN{print $CHAOS_PAUSE + 300}")"
}

# The resumers finish their round and stop (bounded by their deadline).
chaos_deep_stop() {
    [[ -n $(hf_pid deep-resume) ]] || return 0
    touch "$HF_RUN/deep.stop"
    hf_wait_exit deep-resume
    CHAOS_DEEP_RC=$HF_EXIT_STATUS
}

chaos_repair() {
    ((CHAOS_DRY_RUN)) || chaos_deep_stop
    ((CHAOS_REDIS_DOWN)) && chaos_target_restore redis
    return 0
}

# The resumers' own verdict, beside the driver's.
chaos_verdict() {
    chaos_deep_stop
    echo "  $(tail -n 1 "$HF_RUN/deep-resume.log")"
    return "${CHAOS_DEEP_RC:-1}"
}
chaos_main "$@"
