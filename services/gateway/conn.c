/* conn.c - WebSocket connections: client messages in, send queues out.
 *
 * Every connection has a bounded send queue (messages and bytes); an event
 * that does not fit closes that connection with GW_CLOSE_SLOW and frees
 * what it held, so a client that stops reading costs the gateway at most
 * its queue and never delays anyone else. All queues of the process
 * together are bounded too (--send-queue-total-bytes): when a frame would
 * go over, the worker queuing it closes its own connections holding the
 * most bytes (GW_CLOSE_SLOW as well) until it fits, so many clients
 * stalling at once (a network path to them going bad) cannot exhaust
 * memory either. Frames are encoded once per event (per format and
 * prev_offset) and shared by reference; queues count them per connection
 * as if each held a copy, so memory stays below what they count. */
#include <string.h>
#include <sys/socket.h>

#include "gateway.h"
#include "holdfast/alloc.h"
#include "holdfast/event_json.h"
#include "holdfast/log.h"

#define CONN_WRITES_PER_CALLBACK 32 /* frames written per WRITEABLE while the socket takes them */
#define CONN_CLOSE_GRACE_S       5  /* a close frame that cannot be sent: cut after this */
#define CONN_CLOSE_ACK_S         2  /* a close frame sent: wait this long for the client's */
#define CONN_QUEUE_INITIAL       16
/* lws 4.1's own opcode for a close frame (private: lws_close_reason() is
 * its public path, which its libuv loop skips when closing). */
#define CONN_WRITE_CLOSE ((enum lws_write_protocol)4)

/* ---- frames -------------------------------------------------------------- */

static gw_frame_t *frame_new(const hf_buf_t *msg, bool binary)
{
    gw_frame_t *f = hf_malloc(sizeof *f + LWS_PRE + msg->len);
    f->refs = 0;
    f->binary = binary;
    f->len = msg->len;
    memcpy(f->data + LWS_PRE, msg->data, msg->len);
    return f;
}

static void frame_unref(gw_frame_t *f)
{
    if (f && --f->refs <= 0)
        hf_free(f);
}

#define FRAMES_SLOTS 4

struct gw_event_frames {
    const hf_envelope_t *env;
    int64_t offset;
    int n;
    struct {
        bool msgpack;
        int64_t prev;
        gw_frame_t *frame; /* one reference held here */
    } slot[FRAMES_SLOTS];
};

gw_event_frames_t *gw_event_frames_new(const hf_envelope_t *env, int64_t offset)
{
    gw_event_frames_t *fr = hf_calloc(1, sizeof *fr);
    fr->env = env;
    fr->offset = offset;
    return fr;
}

void gw_event_frames_free(gw_event_frames_t *fr)
{
    if (!fr)
        return;
    for (int i = 0; i < fr->n; i++)
        frame_unref(fr->slot[i].frame);
    hf_free(fr);
}

static gw_frame_t *event_frame(gw_event_frames_t *fr, bool msgpack, int64_t prev)
{
    for (int i = 0; i < fr->n; i++)
        if (fr->slot[i].msgpack == msgpack && fr->slot[i].prev == prev)
            return fr->slot[i].frame;
    hf_buf_t msg = HF_BUF_INIT;
    gw_proto_event(&msg, msgpack, fr->env, fr->offset, prev);
    gw_frame_t *f = frame_new(&msg, msgpack);
    hf_buf_free(&msg);
    if (fr->n == FRAMES_SLOTS) { /* rare: many distinct prevs; keep the newest */
        frame_unref(fr->slot[0].frame);
        memmove(&fr->slot[0], &fr->slot[1], sizeof fr->slot[0] * (FRAMES_SLOTS - 1));
        fr->n--;
    }
    f->refs = 1;
    fr->slot[fr->n].msgpack = msgpack;
    fr->slot[fr->n].prev = prev;
    fr->slot[fr->n].frame = f;
    fr->n++;
    return f;
}

/* ---- send queue ---------------------------------------------------------- */

static void conn_queue_clear(gateway_t *gw, gw_conn_t *c)
{
    for (size_t i = 0; i < c->qlen; i++)
        frame_unref(c->queue[(c->qhead + i) % c->qcap]);
    gw->queued_bytes -= c->qbytes;
    atomic_fetch_sub(&gw->proc->queued_bytes, c->qbytes);
    c->qhead = c->qlen = c->qbytes = 0;
}

void gw_conn_close(gateway_t *gw, gw_conn_t *c, int code, const char *why, int64_t retry_after_ms,
                   const char *text)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_code = code;
    gw_proto_close_reason(c->close_reason, sizeof c->close_reason, why, retry_after_ms, text);
    conn_queue_clear(gw, c);
    lws_callback_on_writable(c->wsi);
    /* A client that stopped reading never makes the socket writable. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CONN_CLOSE_GRACE_S);
}

static void conn_queue_grow(gw_conn_t *c)
{
    size_t cap = c->qcap ? c->qcap * 2 : CONN_QUEUE_INITIAL;
    gw_frame_t **q = hf_malloc(cap * sizeof *q);
    for (size_t i = 0; i < c->qlen; i++)
        q[i] = c->queue[(c->qhead + i) % c->qcap];
    hf_free(c->queue);
    c->queue = q;
    c->qcap = cap;
    c->qhead = 0;
}

/* Takes len bytes of the process' budget; false when they do not fit. */
static bool budget_take(gateway_t *gw, size_t len)
{
    gw_process_t *p = gw->proc;
    size_t total = atomic_fetch_add(&p->queued_bytes, len) + len;
    if (total > (size_t)gw->cfg.send_queue_total_bytes) {
        atomic_fetch_sub(&p->queued_bytes, len);
        return false;
    }
    size_t peak = atomic_load(&p->queued_peak);
    while (total > peak && !atomic_compare_exchange_weak(&p->queued_peak, &peak, total)) {
    }
    return true;
}

/* This worker's connection holding the most queued bytes (not closing). */
static gw_conn_t *conn_largest_queue(gateway_t *gw)
{
    gw_conn_t *big = NULL;
    for (gw_conn_t *c = gw->conns; c; c = c->next)
        if (!c->closing && c->qbytes > 0 && (!big || c->qbytes > big->qbytes))
            big = c;
    return big;
}

static void conn_close_slow(gateway_t *gw, gw_conn_t *c, hf_metric_t *counter, const char *why)
{
    hf_counter_inc(counter);
    hf_debug("connection closed: %s (%zu messages, %zu bytes queued)", why, c->qlen, c->qbytes);
    gw_conn_close(gw, c, GW_CLOSE_SLOW, GW_WHY_SLOW, -1,
                  "send queue overflow: resume from your last position");
}

/* Room for len bytes in the process' budget for c's queue: this worker's
 * connections with the most queued bytes are closed first, down to 7/8 of
 * the budget (so the next frames do not each pay for a search). Other
 * workers' connections are theirs to close; should this worker have
 * nothing left to give, c itself, which is behind (it has to queue), is
 * closed. false: c is closing. */
static bool conn_budget_room(gateway_t *gw, gw_conn_t *c, size_t len)
{
    if (budget_take(gw, len))
        return true;
    size_t budget = (size_t)gw->cfg.send_queue_total_bytes;
    while (!c->closing && atomic_load(&gw->proc->queued_bytes) + len > budget - budget / 8) {
        gw_conn_t *big = conn_largest_queue(gw);
        if (!big)
            break;
        conn_close_slow(gw, big, gw->m.closed_budget, "the process' send queues are full");
    }
    if (!c->closing && budget_take(gw, len))
        return true;
    if (!c->closing)
        conn_close_slow(gw, c, gw->m.closed_budget, "the process' send queues are full");
    return false;
}

static void conn_enqueue(gateway_t *gw, gw_conn_t *c, gw_frame_t *f)
{
    if (c->closing)
        return;
    if (c->qlen + 1 > (size_t)gw->cfg.send_queue_messages ||
        c->qbytes + f->len > (size_t)gw->cfg.send_queue_bytes) {
        conn_close_slow(gw, c, gw->m.closed_slow, "send queue full");
        return;
    }
    /* Nothing queued and the socket takes more: write now. Going through
     * WRITEABLE costs two poller changes per frame, which at fan-out rates
     * is most of the gateway's time. lws buffers whatever the socket does
     * not take and flushes it before any later write. */
    if (c->qlen == 0 && !lws_send_pipe_choked(c->wsi)) {
        if (lws_write(c->wsi, f->data + LWS_PRE, f->len,
                      f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < 0)
            gw_conn_close(gw, c, GW_CLOSE_INTERNAL, GW_WHY_INTERNAL, -1, "write failed");
        return;
    }
    if (!conn_budget_room(gw, c, f->len))
        return;
    if (c->qlen == c->qcap)
        conn_queue_grow(c);
    c->queue[(c->qhead + c->qlen) % c->qcap] = f;
    c->qlen++;
    f->refs++;
    c->qbytes += f->len;
    gw->queued_bytes += f->len;
    lws_callback_on_writable(c->wsi);
}

void gw_conn_send_buf(gateway_t *gw, gw_conn_t *c, hf_buf_t *msg)
{
    gw_frame_t *f = frame_new(msg, c->msgpack);
    hf_buf_free(msg);
    conn_enqueue(gw, c, f);
    if (f->refs == 0) /* refused */
        hf_free(f);
}

void gw_conn_deliver(gateway_t *gw, gw_sub_t *sub, gw_event_frames_t *frames, int64_t prev)
{
    conn_enqueue(gw, sub->conn, event_frame(frames, sub->conn->msgpack, prev));
}

void gw_conn_send_subscribed(gateway_t *gw, gw_conn_t *c, gw_sub_t *sub, bool recovered)
{
    hf_buf_t msg = HF_BUF_INIT;
    gw_proto_subscribed(&msg, c->msgpack, sub->channel->name, sub->channel->partition, sub->last,
                        gw->partitions[sub->channel->partition].epoch, recovered, sub->req_id);
    hf_free(sub->req_id); /* answered; a later "subscribed" is the gateway's own */
    sub->req_id = NULL;
    gw_conn_send_buf(gw, c, &msg);
}

void gw_conn_send_error(gateway_t *gw, gw_conn_t *c, const char *code, const char *channel,
                        const char *message, const gw_req_id_t *id, int64_t retry_after_ms)
{
    hf_buf_t msg = HF_BUF_INIT;
    gw_proto_error(&msg, c->msgpack, code, channel, message, id, retry_after_ms);
    gw_conn_send_buf(gw, c, &msg);
}

bool gw_conn_room_for_replay(const gateway_t *gw, gw_conn_t *c)
{
    bool room = c->qlen < (size_t)gw->cfg.send_queue_messages / 2 &&
                c->qbytes < (size_t)gw->cfg.send_queue_bytes / 2;
    if (!room)
        c->kafka_paused = true;
    return room;
}

/* Uniform in [0, bound]: xorshift64 is plenty for spreading reconnects. */
static int64_t conn_random(gateway_t *gw, int64_t bound)
{
    if (!gw->rng)
        gw->rng = (uint64_t)hf_now_us() * 2654435761u + gw->index + 1;
    gw->rng ^= gw->rng << 13;
    gw->rng ^= gw->rng >> 7;
    gw->rng ^= gw->rng << 17;
    return bound > 0 ? (int64_t)(gw->rng % (uint64_t)(bound + 1)) : 0;
}

void gw_conn_close_drain(gateway_t *gw, gw_conn_t *c)
{
    /* Each client its own delay: a pod's clients then land on the others
     * spread over --drain-reconnect-spread rather than in one burst. */
    gw_conn_close(gw, c, GW_CLOSE_RESTART, GW_WHY_DRAIN, conn_random(gw, gw->cfg.drain_spread_ms),
                  "gateway restarting: resume elsewhere");
}

void gw_conns_drain(gateway_t *gw)
{
    for (gw_conn_t *c = gw->conns; c; c = c->next)
        gw_conn_close_drain(gw, c);
}

void gw_conns_heartbeat(gateway_t *gw, int64_t now_us)
{
    int64_t ping_us = gw->cfg.ws_ping_interval_ms * 1000;
    int64_t idle_us = gw->cfg.ws_idle_timeout_ms * 1000;
    for (gw_conn_t *c = gw->conns; c; c = c->next) {
        if (c->closing)
            continue; /* its close has a timeout of its own */
        int64_t quiet = now_us - c->heard_us;
        if (quiet >= idle_us) {
            /* It answers nothing: no close handshake to wait for (and,
             * close_sent, no close frame if a write was already due). */
            c->closing = true;
            c->close_sent = true;
            conn_queue_clear(gw, c);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else if (quiet >= ping_us && !c->ping_sent && !c->ping_owed && c->minor >= 1) {
            /* 1.1: a message, not a control frame: browsers never show
             * those, and a client must see something at least every
             * ping interval to know the connection is alive. The client's
             * pong, like any frame, counts as heard. */
            hf_buf_t msg = HF_BUF_INIT;
            gw_proto_ping(&msg, c->msgpack);
            c->ping_sent = true;
            gw_conn_send_buf(gw, c, &msg);
        } else if (quiet >= ping_us && !c->ping_sent && !c->ping_owed) {
            c->ping_owed = true;
            lws_callback_on_writable(c->wsi);
        }
    }
}

/* Any frame from the client, a PONG included, shows it is alive. */
static void conn_heard(gw_conn_t *c)
{
    c->heard_us = hf_now_us();
    c->ping_sent = false;
}

/* ---- client messages ----------------------------------------------------- */

static gw_sub_t *conn_find_sub(gw_conn_t *c, const char *channel)
{
    for (gw_sub_t *s = c->subs; s; s = s->conn_next)
        if (strcmp(s->channel->name, channel) == 0)
            return s;
    return NULL;
}

static void conn_handle(gateway_t *gw, gw_conn_t *c, const gw_request_t *req)
{
    hf_buf_t msg = HF_BUF_INIT;
    bool has_channel = req->type == GW_REQ_SUBSCRIBE || req->type == GW_REQ_UNSUBSCRIBE;
    gw_sub_t *sub = has_channel ? conn_find_sub(c, req->channel) : NULL;
    switch (req->type) {
    case GW_REQ_PING:
        gw_proto_pong(&msg, c->msgpack, &req->id);
        gw_conn_send_buf(gw, c, &msg);
        return;
    case GW_REQ_PONG:
        return; /* heard: that was its purpose */
    case GW_REQ_AUTH:
        gw_access_refresh(gw, c, req);
        return;
    case GW_REQ_SUBSCRIBE:
        if (sub) {
            gw_conn_send_error(gw, c, "already_subscribed", req->channel,
                               "this connection is already subscribed to the channel", &req->id,
                               -1);
        } else if (!gw_access_may_subscribe(gw, c, req)) {
            return;
        } else if (c->nsubs >= (size_t)gw->cfg.max_subscriptions) {
            gw_conn_send_error(gw, c, "too_many_subscriptions", req->channel,
                               "subscription limit per connection reached", &req->id, -1);
        } else {
            gw_sub_create(gw, c, req);
        }
        return;
    case GW_REQ_UNSUBSCRIBE:
        if (!sub) {
            gw_conn_send_error(gw, c, "not_subscribed", req->channel,
                               "this connection is not subscribed to the channel", &req->id, -1);
            return;
        }
        gw_sub_destroy(gw, sub);
        gw_proto_unsubscribed(&msg, c->msgpack, req->channel, NULL, &req->id);
        gw_conn_send_buf(gw, c, &msg);
        return;
    }
}

/* A whole client message. Refusals close through gw_conn_close(), which
 * keeps reading (and dropping) what the client still sends until it has
 * our close frame: closing at once would reset the connection and lose
 * the frame and its reason. */
static void conn_on_message(gateway_t *gw, gw_conn_t *c, bool binary)
{
    if (binary != c->msgpack) {
        hf_counter_inc(gw->m.protocol_errors);
        gw_conn_close(gw, c, GW_CLOSE_UNSUPPORTED, GW_WHY_UNSUPPORTED_FRAME, -1,
                      c->msgpack ? "binary frames only (msgpack)" : "text frames only (JSON)");
        return;
    }
    if (!gw_access_message_allowed(gw, c))
        return;
    gw_request_t req;
    gw_proto_error_t err;
    hf_err_t rc = c->msgpack
                      ? gw_proto_parse_msgpack((const uint8_t *)c->rx.data, c->rx.len, &req, &err)
                      : gw_proto_parse_json(c->rx.data, c->rx.len, &req, &err);
    if (rc != HF_OK) {
        hf_counter_inc(gw->m.protocol_errors);
        gw_conn_send_error(gw, c, err.code, NULL, err.message, &err.id, -1);
        return;
    }
    conn_handle(gw, c, &req);
}

static int conn_on_receive(gateway_t *gw, gw_conn_t *c, const void *in, size_t len)
{
    conn_heard(c);
    if (lws_is_first_fragment(c->wsi))
        hf_buf_reset(&c->rx);
    if (c->rx.len + len > (size_t)gw->cfg.max_frame) {
        hf_counter_inc(gw->m.protocol_errors);
        hf_buf_free(&c->rx);
        gw_conn_close(gw, c, GW_CLOSE_TOO_BIG, GW_WHY_TOO_BIG, -1, "message too big");
        return 0;
    }
    hf_buf_append(&c->rx, in, len);
    if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi) > 0)
        return 0;
    conn_on_message(gw, c, lws_frame_is_binary(c->wsi));
    hf_buf_reset(&c->rx);
    return 0;
}

static int conn_on_writeable(gateway_t *gw, gw_conn_t *c)
{
    if (c->close_sent)
        return -1;
    if (c->closing) {
        /* The close frame is written here rather than left to lws: on its
         * libuv loop lws 4.1 closes the socket without sending it. Then
         * the socket stays open until the client answers (or a short
         * timeout): closing it with the client's messages unread would
         * send a reset, and the client's TCP stack would drop the close
         * frame with the reason before its application read it. */
        unsigned char frame[LWS_PRE + 2 + sizeof c->close_reason];
        size_t n = strlen(c->close_reason);
        frame[LWS_PRE] = (unsigned char)(c->close_code >> 8);
        frame[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xff);
        memcpy(frame + LWS_PRE + 2, c->close_reason, n);
        if (lws_write(c->wsi, frame + LWS_PRE, 2 + n, CONN_WRITE_CLOSE) < 0)
            return -1;
        c->close_sent = true;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, CONN_CLOSE_ACK_S);
        return 0;
    }
    if (c->ping_owed) {
        /* lws 4.1 reports no PONG of an empty PING: the payload is "hb". */
        unsigned char ping[LWS_PRE + 2] = {[LWS_PRE] = 'h', [LWS_PRE + 1] = 'b'};
        if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0)
            return -1;
        c->ping_owed = false;
        c->ping_sent = true;
        if (lws_send_pipe_choked(c->wsi)) {
            if (c->qlen > 0)
                lws_callback_on_writable(c->wsi);
            return 0;
        }
    }
    for (int i = 0; i < CONN_WRITES_PER_CALLBACK && c->qlen > 0; i++) {
        gw_frame_t *f = c->queue[c->qhead];
        int n = lws_write(c->wsi, f->data + LWS_PRE, f->len,
                          f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        if (n < 0)
            return -1;
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        c->qbytes -= f->len;
        gw->queued_bytes -= f->len;
        atomic_fetch_sub(&gw->proc->queued_bytes, f->len);
        frame_unref(f);
        if (lws_send_pipe_choked(c->wsi))
            break;
    }
    if (c->qlen > 0)
        lws_callback_on_writable(c->wsi);
    if (c->kafka_paused && c->qlen < (size_t)gw->cfg.send_queue_messages / 4 &&
        c->qbytes < (size_t)gw->cfg.send_queue_bytes / 4) {
        c->kafka_paused = false;
        gw_conn_resume_replay(gw, c);
    }
    return 0;
}

/* ---- lws glue ------------------------------------------------------------ */

static bool conn_path_ok(struct lws *wsi)
{
    char uri[64];
    int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
    return n > 0 && strcmp(uri, "/v1/ws") == 0;
}

/* 1.1: what the client may rely on, right after admission. */
static void conn_send_welcome(gateway_t *gw, gw_conn_t *c)
{
    gw_welcome_t w = {
        .gateway = gw->cfg.gateway_id,
        .subject = c->who->subject,
        .expires_s = c->who->expires_s,
        .server_time_us = hf_wall_us(),
        .ping_interval_ms = gw->cfg.ws_ping_interval_ms,
        .idle_timeout_ms = gw->cfg.ws_idle_timeout_ms,
        .max_subscriptions = gw->cfg.max_subscriptions,
        .max_frame = gw->cfg.max_frame,
        .msg_rate = gw->cfg.client_msg_rate,
        .msg_burst = gw->cfg.client_msg_burst,
    };
    hf_buf_t msg = HF_BUF_INIT;
    gw_proto_welcome(&msg, c->msgpack, &w);
    gw_conn_send_buf(gw, c, &msg);
}

static void conn_open(gateway_t *gw, gw_conn_t *c, struct lws *wsi)
{
    /* A fixed kernel buffer bounds what a stalled client pins in the
     * kernel and makes the send queue, not the kernel, absorb bursts. */
    int sndbuf = (int)gw->cfg.socket_sndbuf;
    if (sndbuf > 0 &&
        setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0)
        hf_debug("SO_SNDBUF %d refused", sndbuf);
    memset(c, 0, sizeof *c);
    c->gw = gw;
    c->wsi = wsi;
    c->heard_us = hf_now_us();
    const struct lws_protocols *p = lws_get_protocol(wsi);
    const gw_subprotocol_t *sp = gw_proto_subprotocol(p ? p->name : NULL);
    c->msgpack = sp && sp->msgpack;
    c->minor = sp ? (uint8_t)sp->minor : 0;
    c->next = gw->conns;
    if (gw->conns)
        gw->conns->prev = c;
    gw->conns = c;
    gw->nconns++;
    hf_counter_inc(gw->m.connections_total);
    if (gw->draining)
        gw_conn_close_drain(gw, c);
    else if (gw_access_admit(gw, c, wsi) && c->minor >= 1)
        conn_send_welcome(gw, c);
}

static void conn_closed(gateway_t *gw, gw_conn_t *c)
{
    gw_access_release(gw, c);
    while (c->subs)
        gw_sub_destroy(gw, c->subs);
    conn_queue_clear(gw, c);
    hf_free(c->queue);
    hf_buf_free(&c->rx);
    if (c->prev)
        c->prev->next = c->next;
    else
        gw->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    gw->nconns--;
}

static int conn_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    gateway_t *gw = lws_context_user(lws_get_context(wsi));
    gw_conn_t *c = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return gw->draining || !conn_path_ok(wsi) || !gw_access_handshake(gw, wsi) ? 1 : 0;
    case LWS_CALLBACK_ESTABLISHED:
        conn_open(gw, c, wsi);
        return 0;
    /* c->gw is set by ESTABLISHED: lws also reports CLOSED for upgrades
     * it refused (the per-session data is zeroed then). */
    case LWS_CALLBACK_RECEIVE:
        return !c->gw || c->closing ? 0 : conn_on_receive(gw, c, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c->gw)
            conn_heard(c);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c->gw ? conn_on_writeable(gw, c) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* The answer to our own close frame: close without echoing it. */
        return c->gw && c->close_sent ? -1 : 0;
    case LWS_CALLBACK_CLOSED:
        if (c->gw)
            conn_closed(gw, c);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* Sent to every protocol: the JSON one does the work once. */
        if (strcmp(lws_get_protocol(wsi)->name, GW_SUBPROTOCOL_JSON) == 0)
            gw_inbox_dispatch(gw);
        return 0;
    default:
        return 0;
    }
}

void gw_conn_adopt(gateway_t *gw, int fd)
{
    gw->handoffs--;
    /* On failure lws has closed the socket. */
    if (!lws_adopt_socket_vhost(lws_get_vhost_by_name(gw->lws, "default"), fd))
        hf_warn("could not take a client connection");
}

struct lws_protocols gw_ws_protocol(const char *name)
{
    struct lws_protocols p = {
        .name = name,
        .callback = conn_callback,
        .per_session_data_size = sizeof(gw_conn_t),
        .rx_buffer_size = 4096,
    };
    return p;
}
