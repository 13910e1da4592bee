/* redis_conn.c - Redis URLs, credentials and connecting; see redis_conn.h. */
#include "holdfast/redis_conn.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "holdfast/alloc.h"
#include "holdfast/config.h"
#include "holdfast/file.h"

#define REDIS_PASSWORD_MAX 4096

static int redis_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..len) into a new string; NULL on a bad escape or a
 * NUL byte (AUTH takes it, but nothing else here would). */
static char *redis_decode(const char *s, size_t len)
{
    char *out = hf_malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[n++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? redis_hex(s[i + 1]) : -1;
        int lo = i + 2 < len ? redis_hex(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            out[n] = '\0';
            hf_free_secret(out);
            return NULL;
        }
        out[n++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[n] = '\0';
    return out;
}

void hf_redis_target_free(hf_redis_target_t *t)
{
    hf_free(t->user);
    hf_free_secret(t->password);
    t->user = t->password = NULL;
}

static hf_err_t redis_fail(hf_redis_target_t *t, char *errbuf, size_t errbuf_size,
                           const char *url_shown, const char *why)
{
    snprintf(errbuf, errbuf_size, "redis-url %s: %s", url_shown, why);
    hf_redis_target_free(t);
    return HF_ERR_INVALID;
}

/* user:password@ -> user, password (decoded). */
static hf_err_t redis_userinfo(hf_redis_target_t *t, const char *info, size_t len)
{
    const char *colon = memchr(info, ':', len);
    size_t ulen = colon ? (size_t)(colon - info) : len;
    if (ulen > 0 && !(t->user = redis_decode(info, ulen)))
        return HF_ERR_INVALID;
    if (colon && !(t->password = redis_decode(colon + 1, len - ulen - 1)))
        return HF_ERR_INVALID;
    return HF_OK;
}

hf_err_t hf_redis_target_parse(const char *url, const char *password_file, hf_redis_target_t *t,
                               char *errbuf, size_t errbuf_size)
{
    memset(t, 0, sizeof *t);
    t->port = 6379;
    const char *rest = url;
    if (strncmp(url, "rediss://", 9) == 0)
        return redis_fail(t, errbuf, errbuf_size, "rediss://...",
                          "TLS is not supported by this build (hiredis 0.14); put a TLS "
                          "sidecar beside the client (SECURITY.md)");
    if (strncmp(url, "redis://", 8) == 0)
        rest = url + 8;
    else if (strstr(url, "://"))
        return redis_fail(t, errbuf, errbuf_size, "(not shown)", "expected redis://...");
    /* The last '@' ends the credentials: a password may hold '@' (better
     * percent-encoded, but this is what a reader would expect). */
    const char *at = strrchr(rest, '@');
    const char *hostpart = at ? at + 1 : rest;
    char shown[300]; /* the URL without its credentials, for errors */
    snprintf(shown, sizeof shown, "redis://%s%s", at ? "***@" : "", hostpart);
    if (at && redis_userinfo(t, rest, (size_t)(at - rest)) != HF_OK)
        return redis_fail(t, errbuf, errbuf_size, shown,
                          "bad percent-escape in the user or password");
    size_t hlen = strcspn(hostpart, ":/?");
    if (hlen == 0 || hlen >= sizeof t->host)
        return redis_fail(t, errbuf, errbuf_size, shown,
                          "expected redis://[USER:PASSWORD@]HOST[:PORT][/DB]");
    memcpy(t->host, hostpart, hlen);
    t->host[hlen] = '\0';
    const char *p = hostpart + hlen;
    long long v;
    if (*p == ':') {
        size_t plen = strcspn(p + 1, "/?");
        char port[8];
        if (plen == 0 || plen >= sizeof port)
            return redis_fail(t, errbuf, errbuf_size, shown, "bad port");
        memcpy(port, p + 1, plen);
        port[plen] = '\0';
        if (hf_config_parse_int(port, 1, 65535, &v) != HF_OK)
            return redis_fail(t, errbuf, errbuf_size, shown, "bad port");
        t->port = (int)v;
        p += 1 + plen;
    }
    if (*p == '/' && p[1]) {
        if (hf_config_parse_int(p + 1, 0, 1 << 20, &v) != HF_OK)
            return redis_fail(t, errbuf, errbuf_size, shown, "the database must be a number");
        t->db = (int)v;
    } else if (*p && strcmp(p, "/") != 0) {
        return redis_fail(t, errbuf, errbuf_size, shown,
                          "unexpected text after the host (query options are not supported)");
    }
    if (password_file && password_file[0]) {
        if (t->password)
            return redis_fail(t, errbuf, errbuf_size, shown,
                              "a password in the URL and a password file: give one");
        char why[600];
        if (hf_file_read_secret(password_file, REDIS_PASSWORD_MAX, &t->password, why, sizeof why) !=
            HF_OK)
            return redis_fail(t, errbuf, errbuf_size, shown, why);
    }
    if (t->user && !t->password)
        return redis_fail(t, errbuf, errbuf_size, shown,
                          "a user without a password (give it in the URL or a password file)");
    char db[16] = "";
    if (t->db > 0)
        snprintf(db, sizeof db, "/%d", t->db);
    snprintf(t->name, sizeof t->name, "redis://%s%s%s:%d%s", t->user ? t->user : "",
             t->user ? "@" : "", t->host, t->port, db);
    return HF_OK;
}

/* Runs one command; HF_OK on a non-error reply. */
static hf_err_t redis_command(redisContext *c, const char *what, int argc, const char **argv,
                              hf_err_t *err, char *errbuf, size_t errbuf_size,
                              const hf_redis_target_t *t)
{
    redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
    if (!reply) {
        *err = HF_ERR_UNAVAILABLE;
        snprintf(errbuf, errbuf_size, "%s: %s: %s", t->name, what, c->errstr);
        return *err;
    }
    hf_err_t rc = HF_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* LOADING: a restarting server; anything else is a refusal
         * (WRONGPASS, NOAUTH, NOPERM, ERR AUTH without a password set,
         * ERR DB index out of range) that only new settings cure. */
        rc = *err = strncmp(reply->str, "LOADING", 7) == 0 ? HF_ERR_UNAVAILABLE : HF_ERR_AUTH;
        snprintf(errbuf, errbuf_size, "%s refused %s: %s", t->name, what, reply->str);
    }
    freeReplyObject(reply);
    return rc;
}

redisContext *hf_redis_connect(const hf_redis_target_t *t, long long timeout_ms, hf_err_t *err,
                               char *errbuf, size_t errbuf_size)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(t->host, t->port, tv);
    if (!c || c->err) {
        *err = HF_ERR_UNAVAILABLE;
        snprintf(errbuf, errbuf_size, "%s: %s", t->name, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv); /* bounds every later read and write, these three too */
    char db[16];
    snprintf(db, sizeof db, "%d", t->db);
    const char *auth_user[] = {"AUTH", t->user, t->password};
    const char *auth_pass[] = {"AUTH", t->password};
    const char *select[] = {"SELECT", db};
    const char *ping[] = {"PING"};
    bool ok = (!t->password ||
               (t->user ? redis_command(c, "AUTH", 3, auth_user, err, errbuf, errbuf_size, t)
                        : redis_command(c, "AUTH", 2, auth_pass, err, errbuf, errbuf_size, t)) ==
                   HF_OK) &&
              (t->db == 0 ||
               redis_command(c, "SELECT", 2, select, err, errbuf, errbuf_size, t) == HF_OK) &&
              redis_command(c, "PING", 1, ping, err, errbuf, errbuf_size, t) == HF_OK;
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}
