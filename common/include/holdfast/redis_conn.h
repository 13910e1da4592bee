/* redis_conn.h - reaching Redis: the URL, its credentials, connecting.
 *
 * Owns: parsing redis://[USER[:PASSWORD]@]HOST[:PORT][/DB] (user and
 * password percent-decoded; "HOST:PORT" and "HOST" still work), the
 * password read from a file instead (--redis-password-file), connecting
 * with a timeout and then, on every connect and reconnect, AUTH (an ACL
 * user, or the default user of requirepass), SELECT and a PING that shows
 * the connection may be used, and a name for logs that never holds the
 * password. Every Redis client (the relay's publisher, the gateways'
 * subscribers, holdfast-tap, holdfast-replay's re-delivery) connects
 * through hf_redis_connect().
 *
 * No TLS: Debian 12's hiredis 0.14 has none, so rediss:// is refused with
 * the reason; SECURITY.md gives the supported routes (a TLS sidecar such as
 * stunnel beside each client, or a build against hiredis >= 1.0).
 *
 * Threading: a target is read-only once parsed; any thread may connect.
 * Ownership: hf_redis_target_free() releases what a target holds (the
 * password wiped); the context hf_redis_connect() returns is the caller's
 * (redisFree). */
#ifndef HOLDFAST_REDIS_CONN_H
#define HOLDFAST_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "holdfast/err.h"

typedef struct hf_redis_target {
    char host[256];
    int port;
    int db;         /* SELECTed after connecting when > 0 */
    char *user;     /* ACL user; NULL: AUTH with the password alone (default user) */
    char *password; /* NULL: no AUTH */
    char name[400]; /* "redis://USER@HOST:PORT/DB": the target in logs, no password */
} hf_redis_target_t;

/* Parses url; password_file (NULL or "": none) supplies the password
 * instead of the URL (giving both is refused as ambiguous). On error
 * returns HF_ERR_INVALID with the reason in errbuf, which never quotes the
 * password. *out is zeroed first and needs hf_redis_target_free() after
 * success only. */
hf_err_t hf_redis_target_parse(const char *url, const char *password_file, hf_redis_target_t *out,
                               char *errbuf, size_t errbuf_size);
void hf_redis_target_free(hf_redis_target_t *target);

/* Connects within timeout_ms (also the context's read and write timeout),
 * then AUTH, SELECT and PING. Returns the blocking context, or NULL with
 * the reason in errbuf and *err: HF_ERR_AUTH when Redis refused the
 * credentials, a command or the database (WRONGPASS, NOAUTH, NOPERM, ...:
 * the configuration must change), HF_ERR_UNAVAILABLE when it could not be
 * reached or answered (retry later). */
redisContext *hf_redis_connect(const hf_redis_target_t *target, long long timeout_ms, hf_err_t *err,
                               char *errbuf, size_t errbuf_size);

#endif
