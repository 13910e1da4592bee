/* channels.c - channels, subscriptions and the chain rule.
 *
 * Per subscription the gateway keeps `last`: every event of the channel
 * up to that offset has been delivered to that client. An event from
 * Redis carries its offset and its channel's prev_offset:
 *   offset <= last       duplicate, dropped;
 *   prev_offset <= last  next in line, delivered;
 *   prev_offset > last   gap: read the partition from Kafka until last
 *                        reaches it (fill_until).
 * Records from Kafka are delivered to a subscription only once the
 * partition's scan is known to cover every offset after its `last`
 * (kafka_ok, set by the scan's answer to the need it sent): then a record
 * of its channel with offset > last is the next one. With Redis down
 * (or not yet confirming a channel) subscriptions `tail` the partition
 * from Kafka; when Redis confirms the channel again, a catch-up (scan up
 * to the log end queried after the confirmation) and the relay's next
 * heartbeat (hfctl:heads: the relay publishes to this Redis again) hand
 * back to Redis; without a heartbeat, a grace period after the catch-up.
 * A Redis that only went silent (suspect) keeps its subscriptions: they
 * tail Kafka meanwhile and hand back the same way once it answers. One
 * mechanism covers dropped publishes, outages, resubscription and resume
 * with `since`. */
#include <string.h>

#include "gateway.h"
#include "holdfast/alloc.h"
#include "holdfast/event_json.h"
#include "holdfast/log.h"
#include "holdfast/partition.h"

void gw_channels_init(gateway_t *gw, int32_t partition_count)
{
    gw->partition_count = partition_count;
    gw->partitions = hf_calloc((size_t)partition_count, sizeof *gw->partitions);
    for (int32_t i = 0; i < partition_count; i++) {
        for (int r = 0; r < GW_READERS; r++)
            gw->partitions[i].scan_seen[r] = -1;
        gw->partitions[i].heads_max = -1;
        gw->partitions[i].head = -1;
    }
    gw->channels = hf_strmap_new();
}

void gw_channels_free(gateway_t *gw)
{
    hf_strmap_free(gw->channels); /* connections freed their subscriptions */
    hf_free(gw->partitions);
}

static gw_partition_t *part_of(gateway_t *gw, const gw_channel_t *ch)
{
    return &gw->partitions[ch->partition];
}

static void note_head(gw_partition_t *p, int64_t offset)
{
    if (offset > p->head)
        p->head = offset;
}

/* ---- channels ------------------------------------------------------------ */

static gw_channel_t *channel_get_or_create(gateway_t *gw, const char *name)
{
    gw_channel_t *ch = hf_strmap_get(gw->channels, name);
    if (ch)
        return ch;
    ch = hf_calloc(1, sizeof *ch);
    ch->name = hf_strdup(name);
    ch->partition = hf_partition_for(name, strlen(name), gw->partition_count);
    ch->max_seen = -1;
    gw_partition_t *p = part_of(gw, ch);
    ch->part_next = p->channels;
    if (p->channels)
        p->channels->part_prev = ch;
    p->channels = ch;
    hf_strmap_put(gw->channels, name, ch);
    gw->nchannels++;
    if (gw->redis)
        gw_redis_want(gw->redis, name, true);
    return ch;
}

/* Forgets any hand-back under way (the catch-up, the grace, the wait for
 * the relay's heartbeat). */
static void channel_handback_cancel(gateway_t *gw, gw_channel_t *ch)
{
    ch->catchup_token = 0;
    ch->catchup_wanted = false;
    if (ch->handback_at_us)
        gw->handbacks_pending--;
    ch->handback_at_us = 0;
    if (ch->heads_wait)
        gw->heads_waiting--;
    ch->heads_wait = false;
}

/* Redis carries ch (again): its subscriptions that read Kafka meanwhile
 * hand back once a catch-up (the scan at the log end queried now) is done
 * and a relay heartbeat came since, which proves the relay publishes to
 * this Redis again; without a heartbeat, the grace after the catch-up. */
static void channel_handback_begin(gateway_t *gw, gw_channel_t *ch)
{
    bool tailing = false;
    for (gw_sub_t *s = ch->subs; s && !tailing; s = s->ch_next)
        tailing = s->state == GW_SUB_ACTIVE && s->tail;
    if (!tailing)
        return;
    ch->catchup_wanted = true;
    if (!ch->heads_wait)
        gw->heads_waiting++;
    ch->heads_wait = true;
}

/* Ends ch's Kafka reading: Redis alone from here (the chain rule stitches
 * the seam). Up to the partition's head as the relay last announced it,
 * though: an event the relay skipped after the catch-up's target (its
 * Redis connection was still down) would otherwise wait for its
 * announcement, or be lost with it should the relay die first. The scan
 * is at the log end by now, so this costs no extra read. */
static void channel_handback_end(gateway_t *gw, gw_channel_t *ch, hf_metric_t *via)
{
    gw_partition_t *p = part_of(gw, ch);
    bool head_known = p->heads_max >= 0 && (!p->epoch[0] || strcmp(p->epoch, gw->heads_epoch) == 0);
    channel_handback_cancel(gw, ch);
    hf_counter_inc(via);
    for (gw_sub_t *s = ch->subs; s; s = s->ch_next) {
        if (s->state == GW_SUB_ACTIVE && s->tail && head_known && p->heads_max > s->last &&
            p->heads_max > s->fill_until)
            s->fill_until = p->heads_max;
        s->tail = false;
    }
    p->dirty = true;
}

static void channel_destroy(gateway_t *gw, gw_channel_t *ch)
{
    channel_handback_cancel(gw, ch);
    gw_partition_t *p = part_of(gw, ch);
    if (ch->part_prev)
        ch->part_prev->part_next = ch->part_next;
    else
        p->channels = ch->part_next;
    if (ch->part_next)
        ch->part_next->part_prev = ch->part_prev;
    p->dirty = true;
    hf_strmap_remove(gw->channels, ch->name);
    gw->nchannels--;
    hf_free(ch->ids);
    if (gw->redis)
        gw_redis_want(gw->redis, ch->name, false);
    hf_free(ch->name);
    hf_free(ch);
}

/* ---- event ids ----------------------------------------------------------- */

/* The relay can leave a batch twice in Kafka (a produce reported failed
 * that was in fact written, then produced again): the copies have new
 * offsets and the same ids, and the chain rule by offset takes them for
 * new events. Each channel keeps the ids it delivered last (a ring of up
 * to GW_ID_WINDOW, allocated as it fills) with the offset of each; an
 * event whose id the channel delivered at an offset the subscription has
 * passed is a copy for it. A copy further behind its original than the
 * window reaches is delivered again. */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A UUID's 16 bytes; any other id: two FNV-1a 64 hashes of it. */
static void id_key(const hf_envelope_t *env, uint8_t key[16])
{
    const char *s = env->id;
    size_t len = env->id && env->id_len ? env->id_len : 0;
    if (len == 36) {
        size_t k = 0;
        for (size_t i = 0; i < 36 && k < 16; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                if (s[i] != '-')
                    break;
                continue;
            }
            int hi = hex_digit(s[i]), lo = i + 1 < 36 ? hex_digit(s[i + 1]) : -1;
            if (hi < 0 || lo < 0)
                break;
            key[k++] = (uint8_t)(hi << 4 | lo);
            i++;
        }
        if (k == 16)
            return;
    }
    uint64_t a = 14695981039346656037ull, b = 0x9ae16a3b2f90404full ^ len;
    for (size_t i = 0; i < len; i++) {
        a = (a ^ (uint8_t)s[i]) * 1099511628211ull;
        b = (b ^ (uint8_t)s[i]) * 1099511628211ull;
    }
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

/* The lowest offset at which ch delivered the id; INT64_MAX: none known. */
static int64_t ids_first(const gw_channel_t *ch, const uint8_t key[16])
{
    int64_t first = INT64_MAX;
    for (size_t i = 0; i < ch->ids_len; i++)
        if (ch->ids[i].offset < first && memcmp(ch->ids[i].key, key, 16) == 0)
            first = ch->ids[i].offset;
    return first;
}

static void ids_note(gw_channel_t *ch, const uint8_t key[16], int64_t offset)
{
    for (size_t i = 0; i < ch->ids_len; i++)
        if (ch->ids[i].offset == offset && memcmp(ch->ids[i].key, key, 16) == 0)
            return;
    if (ch->ids_len == ch->ids_cap && ch->ids_cap < GW_ID_WINDOW) {
        /* never overwritten below the full window: the entries are in order */
        ch->ids_cap = ch->ids_cap ? ch->ids_cap * 2 : 16;
        ch->ids = hf_realloc(ch->ids, ch->ids_cap * sizeof *ch->ids);
        ch->ids_next = ch->ids_len;
    }
    gw_id_seen_t *e = &ch->ids[ch->ids_next];
    memcpy(e->key, key, 16);
    e->offset = offset;
    ch->ids_next = (ch->ids_next + 1) % ch->ids_cap;
    if (ch->ids_len < ch->ids_cap)
        ch->ids_len++;
}

/* Offsets of another epoch do not compare: forget them. */
static void ids_forget(gw_channel_t *ch)
{
    ch->ids_len = ch->ids_next = 0;
}

/* Whether the event at offset, whose id the channel first delivered at
 * first, is a copy for s (which takes it as next in line): s has had
 * everything up to its `last`, so the original too when first <= last.
 * Then the copy is skipped and the chain goes on past it; last_event stays
 * the original's, the next event's prev_offset. */
static bool sub_skip_copy(gateway_t *gw, gw_sub_t *s, int64_t first, int64_t offset)
{
    if (first >= offset || first > s->last)
        return false;
    s->last = offset;
    hf_counter_inc(gw->m.duplicate_ids);
    return true;
}

/* ---- subscriptions ------------------------------------------------------- */

/* A resume whose probe could not read the log's epoch (the read timed out)
 * probes again, this many times, before it is answered as not recovered. */
#define SUB_PROBE_RETRIES 5

static void sub_probe(gateway_t *gw, gw_sub_t *sub)
{
    gw_partition_t *p = part_of(gw, sub->channel);
    sub->state = GW_SUB_PROBING;
    sub->probe_token = ++p->next_token;
    gw_kafka_probe(gw->kafka, sub->channel->partition, sub->probe_token);
}

gw_sub_t *gw_sub_create(gateway_t *gw, gw_conn_t *conn, const gw_request_t *req)
{
    gw_channel_t *ch = channel_get_or_create(gw, req->channel);
    gw_sub_t *sub = hf_calloc(1, sizeof *sub);
    sub->conn = conn;
    sub->channel = ch;
    sub->last = -1;
    sub->fill_until = -1;
    if (req->id.present) {
        sub->req_id = hf_malloc(sizeof *sub->req_id);
        *sub->req_id = req->id;
    }
    sub->has_since = req->has_since;
    sub->since_offset = req->since_offset;
    memcpy(sub->since_epoch, req->since_epoch, sizeof sub->since_epoch);
    sub->ch_next = ch->subs;
    if (ch->subs)
        ch->subs->ch_prev = sub;
    ch->subs = sub;
    ch->nsubs++;
    sub->conn_next = conn->subs;
    conn->subs = sub;
    conn->nsubs++;
    gw->nsubs++;
    /* "Live from now" is the log end queried after Redis carries the
     * channel, so nothing falls between the two. */
    if (gw->redis_up && !ch->redis_live)
        sub->state = GW_SUB_WAIT_REDIS;
    else
        sub_probe(gw, sub);
    return sub;
}

void gw_sub_destroy(gateway_t *gw, gw_sub_t *sub)
{
    gw_channel_t *ch = sub->channel;
    if (sub->ch_prev)
        sub->ch_prev->ch_next = sub->ch_next;
    else
        ch->subs = sub->ch_next;
    if (sub->ch_next)
        sub->ch_next->ch_prev = sub->ch_prev;
    ch->nsubs--;
    gw_conn_t *conn = sub->conn;
    for (gw_sub_t **at = &conn->subs; *at; at = &(*at)->conn_next)
        if (*at == sub) {
            *at = sub->conn_next;
            break;
        }
    conn->nsubs--;
    gw->nsubs--;
    part_of(gw, ch)->dirty = true;
    if (ch->nsubs == 0)
        channel_destroy(gw, ch);
    hf_free(sub->req_id);
    hf_free(sub);
}

/* Places a probed subscription: where its stream continues from. */
static void sub_place(gateway_t *gw, gw_sub_t *sub, const gw_msg_t *probe, const char *epoch)
{
    gw_channel_t *ch = sub->channel;
    /* {-1, null}: subscribed while the log was empty; it continues from the
     * log's first record, which the log must still hold */
    bool from_start = sub->since_offset == -1 && !sub->since_epoch[0] && probe->low == 0;
    bool recovered = sub->has_since && (from_start || (strcmp(sub->since_epoch, epoch) == 0 &&
                                                       sub->since_offset + 1 >= probe->low &&
                                                       sub->since_offset < probe->high));
    sub->last = recovered ? sub->since_offset : probe->high - 1;
    sub->last_event = HF_PREV_OFFSET_UNKNOWN;
    snprintf(sub->epoch, sizeof sub->epoch, "%s", epoch);
    sub->state = GW_SUB_ACTIVE;
    if (recovered && sub->last < probe->high - 1)
        sub->fill_until = probe->high - 1;
    if (ch->max_seen > sub->last && ch->max_seen > sub->fill_until)
        sub->fill_until = ch->max_seen; /* published while it was being placed */
    sub->tail = !ch->redis_live || gw->redis_suspect;
    part_of(gw, ch)->dirty = true;
    gw_conn_send_subscribed(gw, sub->conn, sub, recovered);
}

/* ---- inbox handlers ------------------------------------------------------ */

static gw_channel_t *channel_of(gateway_t *gw, const hf_envelope_t *env)
{
    char name[HF_CHANNEL_MAX + 1];
    if (!env->channel || env->channel_len == 0 || env->channel_len > HF_CHANNEL_MAX)
        return NULL;
    memcpy(name, env->channel, env->channel_len);
    name[env->channel_len] = '\0';
    return hf_strmap_get(gw->channels, name);
}

static void note_epoch(gw_partition_t *p, const hf_envelope_t *env)
{
    if (env->epoch && env->epoch_len <= HF_PROTO_EPOCH_MAX &&
        (strlen(p->epoch) != env->epoch_len || memcmp(p->epoch, env->epoch, env->epoch_len))) {
        memcpy(p->epoch, env->epoch, env->epoch_len);
        p->epoch[env->epoch_len] = '\0';
    }
}

/* Whether env names an epoch other than e ("" counts as none). */
static bool epoch_differs(const char *e, const hf_envelope_t *env)
{
    return env->epoch && env->epoch_len > 0 && env->epoch_len <= HF_PROTO_EPOCH_MAX &&
           (strlen(e) != env->epoch_len || memcmp(e, env->epoch, env->epoch_len) != 0);
}

/* The relay started a new epoch (a reset log: offsets start again low,
 * and every channel's chain at -1), and s meets its first event. s's
 * `last` counts in the old epoch and says nothing about the new one: the
 * subscription continues in the new epoch, from its start when restart
 * (the offset is at or below `last`: the log was reset), else from where
 * it is (the offsets went on). The client is told as it would be had it
 * resumed across the change: a "subscribed" with recovered:false, the new
 * epoch and the offset the stream continues from; the chain rule then
 * fills whatever of the new epoch it has not seen from Kafka. A
 * subscription whose epoch was unknown (placed on an empty log) takes the
 * event's without any of this: its `last` is -1 in any epoch. */
static void sub_epoch_change(gateway_t *gw, gw_sub_t *s, const hf_envelope_t *env, bool restart)
{
    bool known = s->epoch[0] != '\0';
    memcpy(s->epoch, env->epoch, env->epoch_len);
    s->epoch[env->epoch_len] = '\0';
    if (!known)
        return;
    hf_counter_inc(gw->m.epoch_changes);
    s->last_event = HF_PREV_OFFSET_UNKNOWN;
    if (restart) {
        /* what the scans answered was about positions of the old log */
        s->last = -1;
        s->fill_until = -1;
        s->kafka_ok = false;
        s->need_token = 0;
        ids_forget(s->channel);
        part_of(gw, s->channel)->dirty = true;
    }
    gw_conn_send_subscribed(gw, s->conn, s, false);
}

/* A Redis event in another epoch than the partition's last: positions of
 * the old epoch (the highest seen, the head) do not compare with the new
 * one's. */
static void partition_epoch_change(gw_partition_t *p)
{
    p->head = -1;
    for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next) {
        ch->max_seen = -1;
        ids_forget(ch);
    }
}

static bool decode(gateway_t *gw, const gw_msg_t *msg, hf_envelope_t *env)
{
    const char *why = NULL;
    if (hf_envelope_decode(msg->data, msg->len, env, &why) == HF_OK)
        return true;
    hf_counter_inc(gw->m.protocol_errors);
    hf_warn("undecodable envelope from %s: %s", msg->kind == GW_MSG_REDIS_EVENT ? "redis" : "kafka",
            why ? why : "invalid");
    return false;
}

static void observe_latency(gateway_t *gw, const hf_envelope_t *env)
{
    if (env->created_at_us <= 0)
        return;
    int64_t now = hf_wall_us();
    hf_histogram_observe(gw->m.latency, (double)(now - env->created_at_us) / 1e6);
}

static void on_redis_event(gateway_t *gw, const gw_msg_t *msg)
{
    hf_envelope_t env;
    if (!decode(gw, msg, &env))
        return;
    gw_channel_t *ch = channel_of(gw, &env);
    if (!ch || env.offset < 0 || env.partition != ch->partition)
        return;
    gw_partition_t *p = part_of(gw, ch);
    if (p->epoch[0] && epoch_differs(p->epoch, &env))
        partition_epoch_change(p);
    note_epoch(p, &env);
    note_head(p, env.offset);
    if (env.offset > ch->max_seen)
        ch->max_seen = env.offset;
    uint8_t key[16];
    id_key(&env, key);
    int64_t first = ids_first(ch, key);
    gw_event_frames_t *frames = NULL;
    for (gw_sub_t *s = ch->subs; s; s = s->ch_next) {
        if (s->state != GW_SUB_ACTIVE)
            continue;
        /* Redis carries the relay's current epoch, in publish order */
        if (epoch_differs(s->epoch, &env))
            sub_epoch_change(gw, s, &env, true);
        if (env.offset <= s->last) {
            hf_counter_inc(gw->m.duplicates);
        } else if (env.prev_offset <= s->last) {
            if (sub_skip_copy(gw, s, first, env.offset))
                continue;
            if (!frames)
                frames = gw_event_frames_new(&env, env.offset);
            /* past a copy the relay's chain names it; the client's chain
             * goes on from the last event it got */
            bool past_copy = s->last_event >= 0 && env.prev_offset > s->last_event;
            gw_conn_deliver(gw, s, frames, past_copy ? s->last_event : env.prev_offset);
            s->last = s->last_event = env.offset;
            hf_counter_inc(gw->m.delivered_redis);
        } else if (env.offset > s->fill_until) {
            if (s->fill_until < 0)
                hf_counter_inc(gw->m.gaps);
            s->fill_until = env.offset;
            p->dirty = true;
        }
    }
    if (frames) {
        ids_note(ch, key, env.offset);
        observe_latency(gw, &env);
    }
    gw_event_frames_free(frames);
}

/* The client is behind: stop giving it Kafka records (the scan goes on
 * for others); it asks again from its last offset once its queue drained. */
static void sub_pause(gw_sub_t *s, int64_t offset)
{
    s->kafka_paused = true;
    s->kafka_ok = false;
    s->need_token = 0;
    if (offset > s->fill_until)
        s->fill_until = offset;
}

void gw_conn_resume_replay(gateway_t *gw, gw_conn_t *conn)
{
    for (gw_sub_t *s = conn->subs; s; s = s->conn_next)
        if (s->kafka_paused) {
            s->kafka_paused = false;
            gw->partitions[s->channel->partition].dirty = true;
        }
    gw_partitions_evaluate(gw);
}

static void on_kafka_record(gateway_t *gw, const gw_msg_t *msg)
{
    if (msg->partition < 0 || msg->partition >= gw->partition_count || msg->reader < 0 ||
        msg->reader >= GW_READERS)
        return;
    gw_partition_t *p = &gw->partitions[msg->partition];
    int r = msg->reader;
    hf_counter_inc(r == GW_READER_DEEP ? gw->m.records_deep : gw->m.records_live);
    if (msg->offset > p->scan_seen[r])
        p->scan_seen[r] = msg->offset;
    note_head(p, msg->offset);
    p->dirty = true;
    hf_envelope_t env;
    if (!decode(gw, msg, &env))
        return;
    env.partition = msg->partition; /* records carry their position in the log, not inside */
    note_epoch(p, &env);
    gw_channel_t *ch = channel_of(gw, &env);
    if (!ch || ch->partition != msg->partition)
        return;
    uint8_t key[16];
    id_key(&env, key);
    int64_t first = ids_first(ch, key);
    gw_event_frames_t *frames = NULL;
    for (gw_sub_t *s = ch->subs; s; s = s->ch_next) {
        if (s->state != GW_SUB_ACTIVE || s->reader != r || !s->kafka_ok)
            continue;
        /* The scan that feeds s met another epoch: at or below `last`, the
         * log was reset under it (read it again from its start); above,
         * the offsets went on. */
        if (epoch_differs(s->epoch, &env)) {
            bool restart = s->epoch[0] && msg->offset <= s->last;
            sub_epoch_change(gw, s, &env, restart);
            if (restart) {
                s->fill_until = msg->offset;
                continue;
            }
        }
        if (msg->offset <= s->last || sub_skip_copy(gw, s, first, msg->offset))
            continue;
        if (!gw_conn_room_for_replay(gw, s->conn)) {
            sub_pause(s, msg->offset);
            continue;
        }
        if (!frames)
            frames = gw_event_frames_new(&env, msg->offset);
        gw_conn_deliver(gw, s, frames, s->last_event);
        s->last = s->last_event = msg->offset;
        hf_counter_inc(gw->m.delivered_kafka);
    }
    if (frames)
        ids_note(ch, key, msg->offset);
    /* The age histogram is about the live path: a deep read is history. */
    if (frames && r == GW_READER_LIVE)
        observe_latency(gw, &env);
    gw_event_frames_free(frames);
}

static void on_kafka_probed(gateway_t *gw, const gw_msg_t *msg)
{
    gw_partition_t *p = &gw->partitions[msg->partition];
    if (msg->ok && msg->text && *msg->text)
        snprintf(p->epoch, sizeof p->epoch, "%s", msg->text);
    if (msg->ok)
        note_head(p, msg->high - 1);
    gw_channel_t *ch_next;
    for (gw_channel_t *ch = p->channels; ch; ch = ch_next) {
        ch_next = ch->part_next; /* ch goes away with its last subscription */
        gw_sub_t *next;
        for (gw_sub_t *s = ch->subs; s; s = next) {
            next = s->ch_next;
            if (s->state != GW_SUB_PROBING || s->probe_token > msg->token)
                continue;
            if (msg->ok) {
                /* the newest record's epoch, or the newest event's this
                 * gateway saw; a resume is never refused for not knowing it */
                const char *epoch = msg->text && *msg->text ? msg->text : p->epoch;
                if (s->has_since && !*epoch && msg->high > msg->low &&
                    s->probe_retries++ < SUB_PROBE_RETRIES) {
                    sub_probe(gw, s);
                    continue;
                }
                sub_place(gw, s, msg, epoch);
                continue;
            }
            gw_conn_send_error(gw, s->conn, "unavailable", ch->name,
                               "the event log is unreachable; subscribe again shortly", s->req_id,
                               GW_RETRY_UNAVAILABLE_MS);
            gw_sub_destroy(gw, s);
        }
    }
}

static void on_kafka_scanning(gateway_t *gw, const gw_msg_t *msg)
{
    gw_partition_t *p = &gw->partitions[msg->partition];
    int r = msg->reader;
    if (r < 0 || r >= GW_READERS || !p->scanning[r])
        return; /* answered after a release: a newer need will come */
    p->scan_seen[r] = -1;
    for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next)
        for (gw_sub_t *s = ch->subs; s; s = s->ch_next)
            if (s->reader == r && s->need_token && s->need_token <= msg->token)
                s->kafka_ok = true;
    p->dirty = true;
}

static void on_kafka_caught_up(gateway_t *gw, const gw_msg_t *msg)
{
    gw_partition_t *p = &gw->partitions[msg->partition];
    for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next) {
        if (!ch->redis_live || !ch->catchup_token || ch->catchup_token > msg->token)
            continue;
        ch->catchup_token = 0;
        /* Everything below the target came before Redis carried the
         * channel; a subscription the scan is not feeding right now
         * (paused, or its need not answered yet) must still get it. */
        for (gw_sub_t *s = ch->subs; s; s = s->ch_next)
            if ((s->kafka_paused || !s->kafka_ok) && msg->offset - 1 > s->last &&
                msg->offset - 1 > s->fill_until)
                s->fill_until = msg->offset - 1;
        /* Redis carries the channel again. The relay's heartbeat since
         * then says it publishes there too: done. Without one it may still
         * be reconnecting (once a second) and skipping publishes: keep
         * reading Kafka a little longer rather than waiting for its
         * announcement. */
        if (!ch->heads_wait) {
            channel_handback_end(gw, ch, gw->m.handbacks_heads);
            continue;
        }
        if (!ch->handback_at_us)
            gw->handbacks_pending++;
        ch->handback_at_us = gw_now_us() + gw->cfg.redis_handback_grace_ms * 1000;
    }
    p->dirty = true;
}

void gw_channels_tick(gateway_t *gw, int64_t now_us)
{
    if (gw->handbacks_pending == 0)
        return;
    for (int32_t i = 0; i < gw->partition_count; i++)
        for (gw_channel_t *ch = gw->partitions[i].channels; ch; ch = ch->part_next) {
            if (ch->handback_at_us && now_us >= ch->handback_at_us)
                channel_handback_end(gw, ch, gw->m.handbacks_timer);
        }
    gw_partitions_evaluate(gw);
}

static void on_kafka_lost(gateway_t *gw, const gw_msg_t *msg)
{
    gw_partition_t *p = &gw->partitions[msg->partition];
    for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next)
        for (gw_sub_t *s = ch->subs; s; s = s->ch_next) {
            if (s->state != GW_SUB_ACTIVE || s->reader != msg->reader || s->last + 1 >= msg->low ||
                !(s->tail || s->fill_until > s->last))
                continue;
            hf_counter_inc(gw->m.unrecoverable);
            s->last = msg->low - 1;
            s->last_event = HF_PREV_OFFSET_UNKNOWN;
            if (s->fill_until <= s->last)
                s->fill_until = -1;
            gw_conn_send_subscribed(gw, s->conn, s, false);
        }
    p->dirty = true;
}

/* The relay could not publish offsets [low, high] of a partition to Redis
 * (it announces that once Redis is back). Subscriptions that may have
 * missed an event there read Kafka now instead of waiting for their
 * channel's next event to reveal the gap. The read starts at each one's
 * own `last`, never later: an earlier event lost unnoticed (a relay that
 * died before announcing) must not be stepped over. */
static void on_redis_skipped(gateway_t *gw, const gw_msg_t *msg)
{
    if (msg->partition < 0 || msg->partition >= gw->partition_count)
        return;
    gw_partition_t *p = &gw->partitions[msg->partition];
    for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next)
        for (gw_sub_t *s = ch->subs; s; s = s->ch_next) {
            if (s->state != GW_SUB_ACTIVE || s->last >= msg->high)
                continue;
            if (msg->high > s->fill_until)
                s->fill_until = msg->high;
            p->dirty = true;
        }
}

/* Every subscription reads Kafka (those waiting for Redis are placed at
 * once, reading Kafka too); keep_live: Redis is only suspect, the
 * channels stay subscribed there. */
static void redis_fall_back(gateway_t *gw, bool keep_live)
{
    for (int32_t i = 0; i < gw->partition_count; i++) {
        gw_partition_t *p = &gw->partitions[i];
        p->dirty = true;
        for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next) {
            if (!keep_live)
                ch->redis_live = false;
            channel_handback_cancel(gw, ch);
            for (gw_sub_t *s = ch->subs; s; s = s->ch_next) {
                if (s->state == GW_SUB_ACTIVE)
                    s->tail = true;
                else if (s->state == GW_SUB_WAIT_REDIS)
                    sub_probe(gw, s);
            }
        }
    }
}

static void on_redis_down(gateway_t *gw)
{
    gw->redis_up = false;
    gw->redis_suspect = false;
    hf_counter_inc(gw->m.fallbacks);
    redis_fall_back(gw, false);
}

/* Redis went silent with the connection open (frozen, or a stalled
 * network): Kafka too, at once. What Redis then delivers late is dropped
 * by the chain rule. */
static void on_redis_suspect(gateway_t *gw)
{
    if (!gw->redis_up)
        return;
    gw->redis_suspect = true;
    hf_counter_inc(gw->m.suspicions);
    redis_fall_back(gw, true);
}

/* It answered: everything it held for us arrived before the PONG, so the
 * channels it confirmed carry every later publish again. */
static void on_redis_trusted(gateway_t *gw)
{
    if (!gw->redis_suspect)
        return;
    gw->redis_suspect = false;
    for (int32_t i = 0; i < gw->partition_count; i++)
        for (gw_channel_t *ch = gw->partitions[i].channels; ch; ch = ch->part_next)
            if (ch->redis_live) {
                channel_handback_begin(gw, ch);
                gw->partitions[i].dirty = true;
            }
}

/* The relay's heartbeat: each partition's last offset it published (or
 * skipped). One that arrives after a channel went live again proves the
 * relay publishes to this Redis now, so nothing after the catch-up's
 * target is missing on Redis: no need for the grace. The highest head
 * seen in the epoch is kept (a heartbeat from a relay that just lost the
 * lead may lag, never lead). */
static void on_redis_heads(gateway_t *gw, const gw_msg_t *msg)
{
    const gw_head_t *heads = (const gw_head_t *)msg->data;
    size_t n = msg->data ? msg->len / sizeof *heads : 0;
    if (strcmp(gw->heads_epoch, msg->text) != 0) {
        snprintf(gw->heads_epoch, sizeof gw->heads_epoch, "%s", msg->text);
        for (int32_t i = 0; i < gw->partition_count; i++)
            gw->partitions[i].heads_max = -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (heads[i].partition < 0 || heads[i].partition >= gw->partition_count)
            continue;
        gw_partition_t *p = &gw->partitions[heads[i].partition];
        if (heads[i].offset > p->heads_max)
            p->heads_max = heads[i].offset;
        note_head(p, heads[i].offset);
    }
    if (gw->heads_waiting == 0 || gw->redis_suspect || !gw->redis_up)
        return;
    for (int32_t i = 0; i < gw->partition_count; i++)
        for (gw_channel_t *ch = gw->partitions[i].channels; ch; ch = ch->part_next) {
            if (!ch->heads_wait || !ch->redis_live)
                continue;
            ch->heads_wait = false;
            gw->heads_waiting--;
            if (ch->handback_at_us) /* caught up already, in its grace */
                channel_handback_end(gw, ch, gw->m.handbacks_heads);
        }
}

static void on_redis_subscribed(gateway_t *gw, const char *name)
{
    gw_channel_t *ch = hf_strmap_get(gw->channels, name);
    if (!ch || !gw->redis_up)
        return;
    ch->redis_live = true;
    for (gw_sub_t *s = ch->subs; s; s = s->ch_next)
        /* A probe taken before the confirmation may predate what Redis
         * now carries: probe again (the older answer is then ignored). */
        if (s->state == GW_SUB_WAIT_REDIS || s->state == GW_SUB_PROBING)
            sub_probe(gw, s);
    if (!gw->redis_suspect)
        channel_handback_begin(gw, ch);
    part_of(gw, ch)->dirty = true;
}

/* ---- what each partition needs from Kafka -------------------------------- */

static bool sub_wants_kafka(gw_sub_t *s, const gw_partition_t *p)
{
    if (s->fill_until >= 0 && s->kafka_ok && s->fill_until <= p->scan_seen[s->reader])
        s->fill_until = -1; /* the scan went past it: nothing of the channel was there */
    if (s->fill_until >= 0 && s->fill_until <= s->last)
        s->fill_until = -1;
    return s->state == GW_SUB_ACTIVE && !s->kafka_paused && (s->tail || s->fill_until >= 0);
}

/* A read from more than --kafka-deep-after records behind the partition's
 * head goes to the deep reader: rewinding the live one that far would hold
 * up every subscription near the head that reads Kafka too (tailing while
 * Redis is away, filling a gap) until it had read all of it again. */
static int sub_reader_for(const gateway_t *gw, const gw_partition_t *p, int64_t from)
{
    return p->head >= 0 && p->head - from >= gw->cfg.kafka_deep_after ? GW_READER_DEEP
                                                                      : GW_READER_LIVE;
}

/* A subscription tailing through the deep reader (Redis away) moves to
 * the live reader, which follows the head anyway, once the deep scan has
 * caught up with the head (within SUB_DEEP_SLACK records: the head moves
 * on meanwhile); earlier, the live reader would be rewound for it, which
 * is what the deep reader is there to avoid. One that only fills up to an
 * offset finishes where it is. The deep scan covered every offset after
 * `last` up to what it forwarded since its answer (kafka_ok), all of the
 * channel's delivered: `last` moves up to there first, so the live reader
 * is asked for no more than that. */
#define SUB_DEEP_SLACK 64

static void sub_deep_maybe_done(const gw_partition_t *p, gw_sub_t *s)
{
    if (!s->kafka_ok || !s->tail)
        return;
    int64_t pos = s->last > p->scan_seen[GW_READER_DEEP] ? s->last : p->scan_seen[GW_READER_DEEP];
    if (p->head - pos > SUB_DEEP_SLACK)
        return;
    s->last = pos;
    s->reader = GW_READER_LIVE;
    s->kafka_ok = false;
    s->need_token = 0;
}

static void partition_evaluate(gateway_t *gw, int32_t pi)
{
    gw_partition_t *p = &gw->partitions[pi];
    p->dirty = false;
    bool wanted[GW_READERS] = {false};
    int64_t from[GW_READERS];
    for (int r = 0; r < GW_READERS; r++)
        from[r] = INT64_MAX;
    for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next)
        for (gw_sub_t *s = ch->subs; s; s = s->ch_next) {
            if (!sub_wants_kafka(s, p))
                continue;
            if (!s->need_token)
                s->reader = sub_reader_for(gw, p, s->last + 1);
            else if (s->reader == GW_READER_DEEP)
                sub_deep_maybe_done(p, s);
            wanted[s->reader] = true;
            if (!s->need_token && s->last + 1 < from[s->reader])
                from[s->reader] = s->last + 1;
        }
    for (int r = 0; r < GW_READERS; r++) {
        if (from[r] == INT64_MAX)
            continue;
        uint64_t token = ++p->next_token;
        for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next)
            for (gw_sub_t *s = ch->subs; s; s = s->ch_next)
                if (!s->need_token && s->reader == r && s->state == GW_SUB_ACTIVE &&
                    !s->kafka_paused && (s->tail || s->fill_until >= 0))
                    s->need_token = token;
        gw_kafka_need(gw->kafka, r, pi, from[r], token);
        p->scanning[r] = true;
    }
    /* After the needs, so the catch-up measures a running scan. */
    for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next)
        if (ch->catchup_wanted) {
            ch->catchup_wanted = false;
            ch->catchup_token = ++p->next_token;
            gw_kafka_catchup(gw->kafka, pi, ch->catchup_token);
        }
    for (int r = 0; r < GW_READERS; r++) {
        if (wanted[r] || !p->scanning[r])
            continue;
        gw_kafka_release(gw->kafka, r, pi);
        p->scanning[r] = false;
        p->scan_seen[r] = -1;
        for (gw_channel_t *ch = p->channels; ch; ch = ch->part_next)
            for (gw_sub_t *s = ch->subs; s; s = s->ch_next)
                if (s->reader == r) {
                    s->kafka_ok = false;
                    s->need_token = 0;
                }
    }
}

void gw_inbox_dispatch(gateway_t *gw)
{
    gw_msg_t *m = gw_inbox_take(gw->inbox);
    while (m) {
        gw_msg_t *next = m->next;
        switch (m->kind) {
        case GW_MSG_REDIS_UP:
            gw->redis_up = true;
            break;
        case GW_MSG_REDIS_DOWN:
            on_redis_down(gw);
            break;
        case GW_MSG_REDIS_SUSPECT:
            on_redis_suspect(gw);
            break;
        case GW_MSG_REDIS_TRUSTED:
            on_redis_trusted(gw);
            break;
        case GW_MSG_REDIS_HEADS:
            on_redis_heads(gw, m);
            break;
        case GW_MSG_REDIS_SUBSCRIBED:
            on_redis_subscribed(gw, m->text);
            break;
        case GW_MSG_REDIS_EVENT:
            on_redis_event(gw, m);
            break;
        case GW_MSG_REDIS_SKIPPED:
            on_redis_skipped(gw, m);
            break;
        case GW_MSG_KAFKA_RECORD:
            on_kafka_record(gw, m);
            if (m->reader == GW_READER_DEEP)
                gw_kafka_deep_done(gw->kafka, m->len);
            break;
        case GW_MSG_KAFKA_PROBED:
            on_kafka_probed(gw, m);
            break;
        case GW_MSG_KAFKA_SCANNING:
            on_kafka_scanning(gw, m);
            break;
        case GW_MSG_KAFKA_CAUGHT_UP:
            on_kafka_caught_up(gw, m);
            break;
        case GW_MSG_KAFKA_LOST:
            on_kafka_lost(gw, m);
            break;
        case GW_MSG_SOCKET:
            gw_conn_adopt(gw, m->fd);
            m->fd = -1;
            break;
        }
        gw_msg_free(m);
        m = next;
    }
    gw_partitions_evaluate(gw);
}

void gw_partitions_evaluate(gateway_t *gw)
{
    for (int32_t i = 0; i < gw->partition_count; i++)
        if (gw->partitions[i].dirty)
            partition_evaluate(gw, i);
}
