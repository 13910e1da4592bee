/* stream.c - the replication connection: the relay's read of new events.
 *
 * The leader reads the logical replication slot (--slot, plugin pgoutput,
 * publication --publication) over libpq's replication protocol, as
 * pg_recvlogical does: START_REPLICATION, then CopyData messages, each
 * either WAL data (one pgoutput message, decoded by pgoutput.c) or a
 * keepalive; the relay answers with standby status updates saying how far
 * everything is recorded. The server keeps the WAL from that position on,
 * and after a restart sends every transaction that committed at or after
 * it again: the relay skips what it already handled (flow.c).
 *
 * Reading costs the same however many events were ever relayed: the server
 * decodes only new WAL, there is no table to scan and nothing to delete.
 *
 * The slot has one reader at a time. A new leader whose predecessor's
 * session still holds it (a dead relay's half-open connection) ends that
 * session: the lease, not the connection, decides who leads. */
#include <endian.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "holdfast/alloc.h"
#include "holdfast/log.h"
#include "relay.h"

/* PostgreSQL's epoch (2000-01-01) in Unix microseconds. */
#define STREAM_PG_EPOCH_UNIX_US 946684800000000LL
#define STREAM_FEEDBACK_MIN_US  (20 * 1000)       /* at most this often when it moved */
#define STREAM_FEEDBACK_MAX_US  (5 * 1000 * 1000) /* at least this often (wal_sender_timeout) */

struct relay_stream {
    PGconn *conn;
    relay_decoder_t *dec;
    bool in_txn;                /* between a Begin and its Commit */
    uint64_t received;          /* end of the last transaction received; 0: none yet */
    int64_t received_commit_us; /* its commit time */
    uint64_t confirmed;         /* the last flush position sent (or found in the slot) */
    int64_t last_feedback_us;
    char errbuf[256];
};

static const char *stream_pq_error(PGconn *conn)
{
    static _Thread_local char msg[256];
    snprintf(msg, sizeof msg, "%.*s", (int)strcspn(PQerrorMessage(conn), "\n"),
             PQerrorMessage(conn));
    return msg;
}

/* Waits until nobody reads the slot, ending the session that does. */
static hf_err_t stream_take_slot(relay_t *r, const char *pid)
{
    hf_logf_kv(HF_LOG_WARN, NULL, "slot %s is read by session %s: ending it (this relay leads)",
               r->cfg.slot, pid);
    const char *params[2] = {pid, r->cfg.slot};
    PGresult *res = relay_store_query(r, "SELECT pg_terminate_backend($1::int)", 1, params, false,
                                      relay_query_timeout_ms(r));
    PQclear(res);
    /* not long: the lease must be renewed meanwhile; the next pass looks again */
    for (int waited = 0; waited < relay_query_timeout_ms(r); waited += 50) {
        res = relay_store_query(r,
                                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1"
                                " AND active_pid IS NOT NULL",
                                1, params + 1, false, relay_query_timeout_ms(r));
        bool busy = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
        bool failed = PQresultStatus(res) != PGRES_TUPLES_OK;
        PQclear(res);
        if (failed)
            return HF_ERR_UNAVAILABLE;
        if (!busy)
            return HF_OK;
        usleep(50 * 1000);
    }
    hf_warn("slot %s still read by another session", r->cfg.slot);
    return HF_ERR_CONFLICT;
}

static hf_err_t stream_create_slot(relay_t *r)
{
    const char *params[1] = {r->cfg.slot};
    /* waits for the transactions open at this moment to end */
    PGresult *res =
        relay_store_query(r, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", 1, params,
                          false, relay_slow_query_timeout_ms(r));
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        hf_error("cannot create the replication slot %s: %.*s (the relay needs wal_level = "
                 "logical and the REPLICATION attribute)",
                 r->cfg.slot, (int)strcspn(PQresultErrorMessage(res), "\n"),
                 PQresultErrorMessage(res));
    else
        hf_logf_kv(HF_LOG_INFO, NULL, "replication slot %s created", r->cfg.slot);
    PQclear(res);
    return ok ? HF_OK : HF_ERR_UNAVAILABLE;
}

hf_err_t relay_stream_prepare(relay_t *r, bool *created)
{
    *created = false;
    const char *params[2] = {r->cfg.slot, r->cfg.publication};
    PGresult *res = relay_store_query(
        r,
        "SELECT s.plugin, s.database = current_database(), s.active_pid, s.wal_status,"
        "       EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $2)"
        "  FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1",
        2, params, false, relay_query_timeout_ms(r));
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        hf_warn("reading the slot's state: %s", PQresultErrorMessage(res));
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    bool exists = !PQgetisnull(res, 0, 0);
    bool ours =
        exists && strcmp(PQgetvalue(res, 0, 0), "pgoutput") == 0 && PQgetvalue(res, 0, 1)[0] == 't';
    bool lost = exists && !PQgetisnull(res, 0, 3) && strcmp(PQgetvalue(res, 0, 3), "lost") == 0;
    bool publication = PQgetvalue(res, 0, 4)[0] == 't';
    char pid[32] = "";
    if (exists && !PQgetisnull(res, 0, 2))
        snprintf(pid, sizeof pid, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    if (!publication) {
        hf_error("publication %s does not exist (run holdfast-migrate)", r->cfg.publication);
        return HF_ERR_INVALID;
    }
    if (exists && !ours) {
        hf_error("slot %s exists for another plugin or database: choose another --slot",
                 r->cfg.slot);
        return HF_ERR_INVALID;
    }
    if (lost) {
        hf_logf_kv(HF_LOG_ERROR, NULL,
                   "slot %s was invalidated (max_slot_wal_keep_size): recreating it and "
                   "reconciling from holdfast.events",
                   r->cfg.slot);
        res = relay_store_query(r, "SELECT pg_drop_replication_slot($1)", 1, params, false,
                                relay_query_timeout_ms(r));
        PQclear(res);
        exists = false;
    }
    if (exists)
        return pid[0] ? stream_take_slot(r, pid) : HF_OK;
    /* reconcile_pending first: a crash right after creating the slot must
     * not lose the events it will never deliver */
    hf_err_t rc = relay_store_slot_mark(r, true);
    if (rc == HF_OK)
        rc = stream_create_slot(r);
    *created = rc == HF_OK;
    return rc;
}

static bool stream_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return false;
    return true;
}

bool relay_stream_names_ok(const char *slot, const char *publication)
{
    return stream_name_ok(slot) && stream_name_ok(publication);
}

hf_err_t relay_stream_open(relay_t *r)
{
    relay_stream_close(r);
    const char *keys[] = {"replication",         "connect_timeout",  "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                          "application_name",    "dbname",           NULL};
    char user_timeout[32];
    relay_store_conn_timeouts(r, user_timeout, sizeof user_timeout);
    const char *vals[] = {"database",    "2", "2", "1", "2", user_timeout, "holdfast-relay-stream",
                          r->cfg.pg_url, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        hf_warn("replication connection: %s", stream_pq_error(conn));
        PQfinish(conn);
        return HF_ERR_UNAVAILABLE;
    }
    char sql[512];
    /* names were checked to be [a-z0-9_]: no quoting games */
    snprintf(sql, sizeof sql,
             "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names '%s', "
             "binary 'true')",
             r->cfg.slot, r->cfg.publication);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        hf_warn("START_REPLICATION on slot %s: %.*s", r->cfg.slot,
                (int)strcspn(PQresultErrorMessage(res), "\n"), PQresultErrorMessage(res));
        PQclear(res);
        PQfinish(conn);
        return HF_ERR_UNAVAILABLE;
    }
    PQclear(res);
    PQsetnonblocking(conn, 1);
    relay_stream_t *s = hf_calloc(1, sizeof *s);
    s->conn = conn;
    s->dec = relay_decoder_new();
    r->stream = s;
    for (int p = 0; p < r->parts_seen; p++)
        r->parts[p].overflowed = false; /* their events come again */
    hf_logf_kv(HF_LOG_INFO, NULL, "streaming from slot %s", r->cfg.slot);
    return HF_OK;
}

void relay_stream_close(relay_t *r)
{
    relay_stream_t *s = r->stream;
    if (!s)
        return;
    PQfinish(s->conn);
    relay_decoder_free(s->dec);
    hf_free(s);
    r->stream = NULL;
}

int relay_stream_socket(const relay_t *r)
{
    return r->stream ? PQsocket(r->stream->conn) : -1;
}

uint64_t relay_stream_received(const relay_t *r)
{
    return r->stream ? r->stream->received : 0;
}

int64_t relay_stream_received_commit_us(const relay_t *r)
{
    return r->stream ? r->stream->received_commit_us : 0;
}

uint64_t relay_stream_confirmed(const relay_t *r)
{
    return r->confirmed_lsn;
}

static uint64_t stream_u64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

static hf_err_t stream_wal_data(relay_t *r, const char *buf, int len)
{
    relay_stream_t *s = r->stream;
    if (len < 25)
        return HF_ERR_INVALID;
    relay_msg_t msg;
    char err[256];
    hf_err_t rc =
        relay_decode(s->dec, (const uint8_t *)buf + 25, (size_t)len - 25, &msg, err, sizeof err);
    if (rc != HF_OK) {
        hf_logf_kv(HF_LOG_ERROR, NULL, "stream from slot %s: %s", r->cfg.slot, err);
        return rc;
    }
    switch (msg.kind) {
    case RELAY_MSG_BEGIN:
        s->in_txn = true;
        break;
    case RELAY_MSG_EVENT:
        relay_flow_accept(r, msg.event);
        break;
    case RELAY_MSG_COMMIT:
        s->in_txn = false;
        s->received = msg.lsn;
        s->received_commit_us = msg.commit_us;
        break;
    case RELAY_MSG_NONE:
        break;
    }
    return HF_OK;
}

hf_err_t relay_stream_read(relay_t *r)
{
    relay_stream_t *s = r->stream;
    if (!s)
        return HF_ERR_UNAVAILABLE;
    if (!PQconsumeInput(s->conn)) {
        hf_warn("stream from slot %s: %s", r->cfg.slot, stream_pq_error(s->conn));
        return HF_ERR_UNAVAILABLE;
    }
    /* until nothing waits, or the buffer is full (reading resumes when it drained) */
    while (r->queued_bytes <= (size_t)r->cfg.stream_buffer) {
        char *buf = NULL;
        int len = PQgetCopyData(s->conn, &buf, 1);
        if (len == 0)
            return HF_OK;
        if (len < 0) {
            hf_warn("stream from slot %s ended: %s", r->cfg.slot, stream_pq_error(s->conn));
            return HF_ERR_UNAVAILABLE;
        }
        hf_err_t rc = HF_OK;
        if (buf[0] == 'w') {
            rc = stream_wal_data(r, buf, len);
        } else if (buf[0] == 'k' && len >= 18) {
            /* the server's position; past every transaction sent when none is open */
            uint64_t wal_end = stream_u64(buf + 1);
            if (!s->in_txn && wal_end > s->received)
                s->received = wal_end;
            if (buf[17])
                rc = relay_stream_feedback(r, true);
        }
        PQfreemem(buf);
        if (rc != HF_OK)
            return rc;
    }
    return HF_OK;
}

hf_err_t relay_stream_feedback(relay_t *r, bool force)
{
    relay_stream_t *s = r->stream;
    if (!s)
        return HF_OK;
    int64_t now = hf_now_us();
    uint64_t flush = relay_flow_confirmable(r);
    if (flush < r->confirmed_lsn)
        flush = r->confirmed_lsn; /* never report less than the slot holds */
    bool moved = flush > s->confirmed;
    if (!force && !(moved && now - s->last_feedback_us >= STREAM_FEEDBACK_MIN_US) &&
        now - s->last_feedback_us < STREAM_FEEDBACK_MAX_US) {
        (void)PQflush(s->conn);
        return HF_OK;
    }
    char msg[34];
    uint64_t write = s->received > flush ? s->received : flush;
    uint64_t v[4] = {htobe64(write), htobe64(flush), htobe64(flush),
                     htobe64((uint64_t)(hf_wall_us() - STREAM_PG_EPOCH_UNIX_US))};
    msg[0] = 'r';
    memcpy(msg + 1, v, sizeof v);
    msg[33] = 0;
    if (PQputCopyData(s->conn, msg, sizeof msg) < 0 || PQflush(s->conn) < 0) {
        hf_warn("stream feedback: %s", stream_pq_error(s->conn));
        return HF_ERR_UNAVAILABLE;
    }
    s->confirmed = flush;
    if (flush > r->confirmed_lsn)
        r->confirmed_lsn = flush;
    s->last_feedback_us = now;
    return HF_OK;
}
