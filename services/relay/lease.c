/* lease.c - which relay leads.
 *
 * One lease, in holdfast.relay_leader, with an expiry on PostgreSQL's
 * clock (docs/relay.md argues the choice over advisory locks). Every
 * lease-renew interval one call of holdfast.relay_lease_tick renews it, or
 * takes it when it is free or expired. The relay notes its monotonic time
 * before the call: the database computes expires_at = its now + TTL after
 * that instant, so "sent + TTL" on the relay's own clock is a deadline the
 * lease surely outlives (clock rates assumed equal, not clocks). The
 * leader produces only while that deadline is more than the produce
 * timeout (plus one renew interval) away, so every record it sends has
 * its delivery report before another relay can take the lease. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/log.h"
#include "relay.h"

bool relay_lease_producible(const relay_t *r, int64_t now_us)
{
    int64_t margin_us =
        (r->cfg.produce_timeout_ms + RELAY_REPORT_SLACK_MS + r->cfg.lease_renew_ms) * 1000;
    return r->leader && r->lease_deadline_us - now_us > margin_us;
}

static void lease_lost(relay_t *r)
{
    hf_logf_kv(HF_LOG_WARN, NULL, "lease lost: standing by");
    hf_counter_inc(r->m.leases_lost);
    relay_stop_leading(r);
}

hf_err_t relay_lease_tick(relay_t *r)
{
    int64_t sent_us = hf_now_us();
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", r->cfg.lease_ttl_ms);
    const char *params[2] = {r->cfg.relay_id, ttl};
    PGresult *res = relay_store_query(r,
                                      "SELECT leader, coalesce(generation, 0), coalesce(owner, ''),"
                                      " taken_from FROM holdfast.relay_lease_tick($1, $2::int)",
                                      2, params, false, relay_query_timeout_ms(r));
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        hf_warn("lease tick: %s", PQresultErrorMessage(res));
        if (PQstatus(r->pg) != CONNECTION_OK)
            atomic_store(&r->pg_ok, false);
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    bool leader = PQgetvalue(res, 0, 0)[0] == 't';
    int64_t generation = atoll(PQgetvalue(res, 0, 1));
    if (leader && (!r->leader || generation != r->generation)) {
        if (r->leader)
            lease_lost(r); /* taken and given back meanwhile: start over */
        if (!PQgetisnull(res, 0, 3)) {
            hf_counter_inc(r->m.takeovers);
            hf_logf_kv(HF_LOG_INFO, NULL, "leading (generation %" PRId64 "), taken over from %s",
                       generation, PQgetvalue(res, 0, 3));
        } else {
            hf_logf_kv(HF_LOG_INFO, NULL, "leading (generation %" PRId64 ")", generation);
        }
        r->leader = true;
        r->started = false;
        r->generation = generation;
    } else if (!leader && r->leader) {
        lease_lost(r);
    } else if (!leader && strcmp(r->leader_seen, PQgetvalue(res, 0, 2)) != 0) {
        snprintf(r->leader_seen, sizeof r->leader_seen, "%s", PQgetvalue(res, 0, 2));
        if (r->leader_seen[0])
            hf_logf_kv(HF_LOG_INFO, NULL, "standing by: %s leads", r->leader_seen);
    }
    if (leader)
        r->lease_deadline_us = sent_us + r->cfg.lease_ttl_ms * 1000;
    hf_gauge_set(r->m.leader, leader ? 1 : 0);
    PQclear(res);
    return HF_OK;
}

void relay_lease_leave(relay_t *r)
{
    if (!r->pg || PQstatus(r->pg) != CONNECTION_OK)
        return;
    relay_store_commit_finish(r);
    const char *params[1] = {r->cfg.relay_id};
    PGresult *res = relay_store_query(r, "SELECT holdfast.relay_leave($1)", 1, params, false,
                                      relay_query_timeout_ms(r));
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        hf_info("lease released");
    else
        hf_warn("releasing the lease: %s", PQresultErrorMessage(res));
    PQclear(res);
    r->leader = false;
    hf_gauge_set(r->m.leader, 0);
}
