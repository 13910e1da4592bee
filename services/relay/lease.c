/* lease.c - which partitions this relay may produce for.
 *
 * Leases live in holdfast.relay_leases with an expiry on PostgreSQL's
 * clock (docs/relay.md argues the choice over advisory locks). Every
 * lease-renew interval one call of holdfast.relay_lease_tick renews,
 * balances and acquires. The relay notes its monotonic time before the
 * call: the database computes expires_at = its now + TTL after that
 * instant, so "sent + TTL" on the relay's own clock is a deadline the lease
 * surely outlives (clock rates assumed equal, not clocks). A partition is
 * produced for only while that deadline is more than the produce timeout
 * (plus one renew interval) away, so every message a relay sends has its
 * delivery report before another relay can acquire the partition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/log.h"
#include "relay.h"

bool relay_lease_producible(const relay_t *r, int partition, int64_t now_us)
{
    const relay_partition_t *p = &r->parts[partition];
    int64_t margin_us =
        (r->cfg.produce_timeout_ms + RELAY_REPORT_SLACK_MS + r->cfg.lease_renew_ms) * 1000;
    return p->owned && p->synced && now_us >= p->retry_at_us && p->deadline_us - now_us > margin_us;
}

static void lease_note_lost(relay_t *r, int partition)
{
    relay_partition_t *p = &r->parts[partition];
    if (!p->owned)
        return;
    hf_logf_kv(HF_LOG_WARN, NULL, "lease of partition %d lost or given back", partition);
    p->owned = false;
    p->synced = false;
    /* another relay may extend its channels' chains meanwhile: forget ours */
    relay_chain_clear(r->chain);
    r->poison_attempts[partition] = 0;
}

hf_err_t relay_lease_tick(relay_t *r)
{
    int64_t sent_us = relay_now_us();
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", r->cfg.lease_ttl_ms);
    const char *params[2] = {r->cfg.relay_id, ttl};
    PGresult *res = PQexecParams(r->pg,
                                 "SELECT partition, generation, is_new, taken_from"
                                 "  FROM holdfast.relay_lease_tick($1, $2::int)",
                                 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        hf_warn("lease tick: %s", PQresultErrorMessage(res));
        if (PQstatus(r->pg) != CONNECTION_OK)
            atomic_store(&r->pg_ok, false);
        PQclear(res);
        return HF_ERR_UNAVAILABLE;
    }
    bool held[RELAY_MAX_PARTITIONS] = {false};
    int owned = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        int part = atoi(PQgetvalue(res, i, 0));
        if (part < 0 || part >= RELAY_MAX_PARTITIONS)
            continue;
        relay_partition_t *p = &r->parts[part];
        int64_t generation = atoll(PQgetvalue(res, i, 1));
        bool is_new = PQgetvalue(res, i, 2)[0] == 't';
        if (is_new || !p->owned || p->generation != generation) {
            p->synced = false; /* read the Kafka tail before producing */
            /* chains of its channels may have grown elsewhere since we last held it */
            relay_chain_clear(r->chain);
            if (!PQgetisnull(res, i, 3)) {
                hf_counter_inc(r->m.takeovers);
                hf_logf_kv(HF_LOG_INFO, NULL, "partition %d taken over from %s", part,
                           PQgetvalue(res, i, 3));
            } else {
                hf_logf_kv(HF_LOG_INFO, NULL, "partition %d acquired", part);
            }
        }
        p->owned = true;
        p->generation = generation;
        p->deadline_us = sent_us + r->cfg.lease_ttl_ms * 1000;
        held[part] = true;
        owned++;
    }
    PQclear(res);
    for (int part = 0; part < RELAY_MAX_PARTITIONS; part++)
        if (!held[part] && r->parts[part].owned) {
            hf_counter_inc(r->m.leases_lost);
            lease_note_lost(r, part);
        }
    hf_gauge_set(r->m.partitions_owned, owned);
    return HF_OK;
}

void relay_lease_leave(relay_t *r)
{
    if (!r->pg || PQstatus(r->pg) != CONNECTION_OK)
        return;
    const char *params[1] = {r->cfg.relay_id};
    PGresult *res =
        PQexecParams(r->pg, "SELECT holdfast.relay_leave($1)", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        hf_info("leases released");
    else
        hf_warn("releasing leases: %s", PQresultErrorMessage(res));
    PQclear(res);
    for (int part = 0; part < RELAY_MAX_PARTITIONS; part++)
        r->parts[part].owned = false;
    hf_gauge_set(r->m.partitions_owned, 0);
}
