/* access.c - who may connect and subscribe, and how much they may ask.
 *
 * Owns: the Origin allow-list checked at the handshake (browsers send the
 * page's origin; a page not listed gets 403 before anything else), token
 * verification at the upgrade (Authorization header, or
 * ?token= for browsers, which cannot set headers on a WebSocket), the
 * subscribe check against the token's patterns, closing connections whose
 * token expires, a fresh token on an open connection (the auth message),
 * connection counts per client address and per subject (process-wide,
 * under one lock taken only at connect and close) and each connection's
 * message-rate bucket. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "holdfast/alloc.h"
#include "holdfast/http_parse.h"
#include "holdfast/log.h"

/* An Origin as browsers serialise it (RFC 6454): scheme "://" host
 * [":" port], lower case, no path; or "null". */
static bool access_origin_is_valid(const char *o, size_t len)
{
    if (len == 4 && memcmp(o, "null", 4) == 0)
        return true;
    const char *sep = memmem(o, len, "://", 3);
    if (!sep || sep == o || (size_t)(sep - o) + 3 >= len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = o[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || strchr(":/.-+[]_", c)))
            return false;
    }
    return !memchr(sep + 3, '/', len - (size_t)(sep + 3 - o));
}

static void access_origins_free(gw_process_t *p)
{
    for (size_t i = 0; i < p->norigins; i++)
        hf_free(p->origins[i]);
    hf_free(p->origins);
    p->origins = NULL;
    p->norigins = 0;
    p->any_origin = false;
}

hf_err_t gw_access_origins_parse(gw_process_t *p, const char *list, char *errbuf,
                                 size_t errbuf_size)
{
    access_origins_free(p);
    for (const char *s = list ? list : ""; *s;) {
        s += strspn(s, ", \t\n");
        size_t len = strcspn(s, ", \t\n");
        if (len == 0)
            break;
        if (len == 1 && *s == '*') {
            p->any_origin = true;
        } else if (!access_origin_is_valid(s, len)) {
            snprintf(errbuf, errbuf_size,
                     "allowed-origins: '%.*s' is not an Origin as browsers send it "
                     "(scheme://host[:port] in lower case, no path or trailing slash; or *)",
                     (int)(len > 200 ? 200 : len), s);
            access_origins_free(p);
            return HF_ERR_INVALID;
        } else {
            p->origins = hf_realloc(p->origins, (p->norigins + 1) * sizeof *p->origins);
            p->origins[p->norigins++] = hf_strndup(s, len);
        }
        s += len;
    }
    return HF_OK;
}

bool gw_access_origin_allowed(const gw_process_t *p, const char *origin)
{
    if (!origin || p->any_origin)
        return true;
    for (size_t i = 0; i < p->norigins; i++)
        if (strcmp(p->origins[i], origin) == 0)
            return true;
    return false;
}

#define ACCESS_ORIGIN_MAX 512 /* longer than any Origin a page could have */

bool gw_access_handshake(gateway_t *gw, struct lws *wsi)
{
    char origin[ACCESS_ORIGIN_MAX];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (n <= 0 || gw->proc->any_origin)
        return true;
    if (n < (int)sizeof origin && lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) > 0 &&
        gw_access_origin_allowed(gw->proc, origin))
        return true;
    hf_counter_inc(gw->m.origin_refused);
    /* lws has switched the connection to its WebSocket role already; an
     * HTTP write still goes out raw, before lws closes it. */
    hf_buf_t body = HF_BUF_INIT, out = HF_BUF_INIT;
    hf_http_error_body(&body, "origin_not_allowed",
                       "this web page's origin may not open WebSockets here");
    hf_buf_reserve(&out, LWS_PRE + 256 + body.len);
    out.len = LWS_PRE;
    hf_buf_printf(&out,
                  "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  body.len);
    hf_buf_append(&out, body.data, body.len);
    if (lws_write(wsi, (unsigned char *)out.data + LWS_PRE, out.len - LWS_PRE, LWS_WRITE_HTTP) < 0)
        hf_debug("the 403 to a refused origin could not be written");
    hf_buf_free(&out);
    hf_buf_free(&body);
    return false;
}

hf_err_t gw_access_init(gw_process_t *p, char *errbuf, size_t errbuf_size)
{
    if (gw_access_origins_parse(p, p->cfg.allowed_origins, errbuf, errbuf_size) != HF_OK)
        return HF_ERR_INVALID;
    p->auth = hf_auth_new(&p->cfg.auth, errbuf, errbuf_size);
    if (!p->auth) {
        access_origins_free(p);
        return HF_ERR_INVALID;
    }
    if (p->any_origin)
        hf_info("allowed-origins: * (any web page may open WebSockets here: tokens, not "
                "cookies, authenticate them)");
    pthread_mutex_init(&p->access_lock, NULL);
    p->conns_per_ip = hf_strmap_new();
    p->conns_per_subject = hf_strmap_new();
    return HF_OK;
}

void gw_access_free(gw_process_t *p)
{
    access_origins_free(p);
    if (!p->auth)
        return;
    hf_auth_free(p->auth);
    hf_strmap_free(p->conns_per_ip); /* values are counts, not pointers */
    hf_strmap_free(p->conns_per_subject);
    pthread_mutex_destroy(&p->access_lock);
}

/* A limit's refusal: try again after this (a client backing off from a
 * connection limit waits for others to leave; from the message rate, for
 * its bucket to refill). */
#define ACCESS_RETRY_CONNS_MS 5000
#define ACCESS_RETRY_RATE_MS  1000

/* The protocol's code for a refused token; the verifier's words are for
 * people. An expired token is renewed by the client; any other refusal is
 * a token that will not do better next time. */
static const char *access_token_code(const char *token, const char *why)
{
    if (!token)
        return GW_WHY_TOKEN_MISSING;
    return strcmp(why, "token expired") == 0 ? GW_WHY_TOKEN_EXPIRED : GW_WHY_TOKEN_INVALID;
}

/* Counts are stored as the map's pointer values. */
static bool access_count_take(hf_strmap_t *map, const char *key, long long max)
{
    intptr_t n = (intptr_t)hf_strmap_get(map, key);
    if (max > 0 && n >= max)
        return false;
    hf_strmap_put(map, key, (void *)(n + 1));
    return true;
}

static void access_count_put(hf_strmap_t *map, const char *key)
{
    intptr_t n = (intptr_t)hf_strmap_get(map, key);
    if (n <= 1)
        hf_strmap_remove(map, key);
    else
        hf_strmap_put(map, key, (void *)(n - 1));
}

/* The address's place, taken before the token is even looked at: a flood
 * of tokenless upgrades from one address is bounded too. */
static bool access_ip_take(gateway_t *gw, gw_conn_t *c, char *why, size_t why_size)
{
    gw_process_t *p = gw->proc;
    pthread_mutex_lock(&p->access_lock);
    c->counted_ip = access_count_take(p->conns_per_ip, c->peer, gw->cfg.max_conns_per_ip);
    pthread_mutex_unlock(&p->access_lock);
    if (!c->counted_ip) {
        hf_counter_inc(gw->m.limited_conns_ip);
        snprintf(why, why_size, "too many connections from %s (limit %lld)", c->peer,
                 gw->cfg.max_conns_per_ip);
    }
    return c->counted_ip;
}

static bool access_subject_take(gateway_t *gw, gw_conn_t *c, char *why, size_t why_size)
{
    gw_process_t *p = gw->proc;
    /* Without auth everyone is "anonymous": a subject limit would be a
     * limit on all clients together. */
    long long max_subject = hf_auth_enabled(p->auth) ? gw->cfg.max_conns_per_subject : 0;
    pthread_mutex_lock(&p->access_lock);
    c->counted_subject = access_count_take(p->conns_per_subject, c->who->subject, max_subject);
    pthread_mutex_unlock(&p->access_lock);
    if (!c->counted_subject) {
        hf_counter_inc(gw->m.limited_conns_subject);
        snprintf(why, why_size, "too many connections for this subject (limit %lld)",
                 gw->cfg.max_conns_per_subject);
    }
    return c->counted_subject;
}

/* The bearer token of the upgrade request, into buf; NULL when none.
 * buf holds any header lws kept, so a long token reaches the verifier
 * (which names it too long) rather than being taken for none. */
static const char *access_token(struct lws *wsi, char *buf, size_t size)
{
    if (lws_hdr_copy(wsi, buf, (int)size, WSI_TOKEN_HTTP_AUTHORIZATION) > 0)
        return hf_auth_bearer(buf);
    const char *arg = lws_get_urlarg_by_name(wsi, "token=", buf, (int)size);
    return arg && arg[0] ? arg : NULL;
}

bool gw_access_admit(gateway_t *gw, gw_conn_t *c, struct lws *wsi)
{
    char buf[HF_HTTP_HEADER_MAX + 1]; /* 12 KiB on this worker thread's stack */
    char why[200];
    lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
    if (!access_ip_take(gw, c, why, sizeof why)) {
        gw_conn_close(gw, c, GW_CLOSE_POLICY, GW_WHY_LIMIT_IP, ACCESS_RETRY_CONNS_MS, why);
        return false;
    }
    const char *token = access_token(wsi, buf, sizeof buf);
    if (hf_auth_verify(gw->proc->auth, token, (int64_t)time(NULL), &c->who, why, sizeof why) !=
        HF_OK) {
        hf_counter_inc(gw->m.auth_failed);
        char reason[256];
        snprintf(reason, sizeof reason, "unauthorized: %s", why);
        gw_conn_close(gw, c, GW_CLOSE_UNAUTHORIZED, access_token_code(token, why), -1, reason);
        return false;
    }
    if (!access_subject_take(gw, c, why, sizeof why)) {
        gw_conn_close(gw, c, GW_CLOSE_POLICY, GW_WHY_LIMIT_SUBJECT, ACCESS_RETRY_CONNS_MS, why);
        return false;
    }
    return true;
}

void gw_access_release(gateway_t *gw, gw_conn_t *c)
{
    gw_process_t *p = gw->proc;
    if (c->counted_ip || c->counted_subject) {
        pthread_mutex_lock(&p->access_lock);
        if (c->counted_ip)
            access_count_put(p->conns_per_ip, c->peer);
        if (c->counted_subject)
            access_count_put(p->conns_per_subject, c->who->subject);
        pthread_mutex_unlock(&p->access_lock);
        c->counted_ip = c->counted_subject = false;
    }
    hf_auth_identity_free(c->who);
    c->who = NULL;
}

static bool access_expired(const gateway_t *gw, const gw_conn_t *c, int64_t now_s)
{
    return c->who && c->who->expires_s && now_s - gw->cfg.auth.leeway_s > c->who->expires_s;
}

bool gw_access_may_subscribe(gateway_t *gw, gw_conn_t *c, const gw_request_t *req)
{
    if (access_expired(gw, c, (int64_t)time(NULL))) {
        gw_conn_close(gw, c, GW_CLOSE_UNAUTHORIZED, GW_WHY_TOKEN_EXPIRED, -1,
                      "unauthorized: token expired");
        return false;
    }
    if (hf_auth_may_subscribe(c->who, req->channel))
        return true;
    hf_counter_inc(gw->m.auth_forbidden);
    gw_conn_send_error(gw, c, "forbidden", req->channel, "the token does not allow this channel",
                       &req->id, -1);
    return false;
}

void gw_access_refresh(gateway_t *gw, gw_conn_t *c, const gw_request_t *req)
{
    hf_auth_identity_t *who = NULL;
    char why[200];
    if (hf_auth_verify(gw->proc->auth, req->token, (int64_t)time(NULL), &who, why, sizeof why) !=
        HF_OK) {
        /* The connection keeps its current token, until it expires. */
        hf_counter_inc(gw->m.auth_failed);
        gw_conn_send_error(gw, c, access_token_code(req->token, why), NULL, why, &req->id, -1);
        return;
    }
    /* The subject is what the connection counts under (and what its
     * logs and limits name): a token of someone else needs a connection
     * of its own. */
    if (strcmp(who->subject, c->who->subject) != 0) {
        hf_auth_identity_free(who);
        gw_conn_send_error(gw, c, "subject_mismatch", NULL,
                           "the token names another subject than this connection's; reconnect "
                           "with it",
                           &req->id, -1);
        return;
    }
    hf_auth_identity_free(c->who);
    c->who = who;
    hf_counter_inc(gw->m.token_refreshes);
    hf_buf_t msg = HF_BUF_INIT;
    gw_sub_t *next;
    for (gw_sub_t *s = c->subs; s; s = next) {
        next = s->conn_next;
        if (hf_auth_may_subscribe(who, s->channel->name))
            continue;
        hf_counter_inc(gw->m.auth_forbidden);
        gw_proto_unsubscribed(&msg, c->msgpack, s->channel->name, "forbidden", NULL);
        gw_sub_destroy(gw, s);
        gw_conn_send_buf(gw, c, &msg); /* frees msg for the next one */
    }
    gw_proto_authenticated(&msg, c->msgpack, who->subject, who->expires_s, &req->id);
    gw_conn_send_buf(gw, c, &msg);
}

bool gw_access_message_allowed(gateway_t *gw, gw_conn_t *c)
{
    if (hf_bucket_take(&c->msg_bucket, (double)gw->cfg.client_msg_rate,
                       (double)gw->cfg.client_msg_burst, 1, hf_now_us(), NULL))
        return true;
    hf_counter_inc(gw->m.limited_msg_rate);
    char reason[256];
    snprintf(reason, sizeof reason, "too many messages (limit %lld/s)", gw->cfg.client_msg_rate);
    gw_conn_close(gw, c, GW_CLOSE_POLICY, GW_WHY_LIMIT_RATE, ACCESS_RETRY_RATE_MS, reason);
    return false;
}

void gw_access_expire(gateway_t *gw, int64_t now_s)
{
    for (gw_conn_t *c = gw->conns; c; c = c->next)
        if (!c->closing && access_expired(gw, c, now_s))
            gw_conn_close(gw, c, GW_CLOSE_UNAUTHORIZED, GW_WHY_TOKEN_EXPIRED, -1,
                          "unauthorized: token expired");
}
