/* Redis URLs with credentials and a database, the password from a file,
 * and a name for logs that never holds the password. (Connecting, AUTH
 * and SELECT against a real redis-server with ACLs: tests/integration/
 * 037_redis_auth.sh.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "holdfast/redis_conn.h"

static hf_err_t parse(const char *url, const char *file, hf_redis_target_t *t, char *err)
{
    return hf_redis_target_parse(url, file, t, err, 256);
}

int main(void)
{
    hf_redis_target_t t;
    char err[256];

    CHECK(parse("redis://127.0.0.1:6380", NULL, &t, err) == HF_OK);
    CHECK_STR_EQ(t.host, "127.0.0.1");
    CHECK_INT_EQ(t.port, 6380);
    CHECK_INT_EQ(t.db, 0);
    CHECK(t.user == NULL && t.password == NULL);
    CHECK_STR_EQ(t.name, "redis://127.0.0.1:6380");
    hf_redis_target_free(&t);

    CHECK(parse("redis-host", NULL, &t, err) == HF_OK);
    CHECK_STR_EQ(t.host, "redis-host");
    CHECK_INT_EQ(t.port, 6379);
    hf_redis_target_free(&t);
    CHECK(parse("h:7000/", NULL, &t, err) == HF_OK);
    CHECK_INT_EQ(t.port, 7000);
    hf_redis_target_free(&t);

    /* An ACL user, a percent-encoded password, a database. */
    CHECK(parse("redis://relay:p%40ss%3Aw0rd@redis.internal:6379/3", NULL, &t, err) == HF_OK);
    CHECK_STR_EQ(t.user, "relay");
    CHECK_STR_EQ(t.password, "p@ss:w0rd");
    CHECK_STR_EQ(t.host, "redis.internal");
    CHECK_INT_EQ(t.db, 3);
    CHECK_STR_EQ(t.name, "redis://relay@redis.internal:6379/3");
    hf_redis_target_free(&t);

    /* requirepass: a password alone; a raw '@' in it still parses. */
    CHECK(parse("redis://:s3cr@t@127.0.0.1:1", NULL, &t, err) == HF_OK);
    CHECK(t.user == NULL);
    CHECK_STR_EQ(t.password, "s3cr@t");
    CHECK(strstr(t.name, "s3cr") == NULL);
    hf_redis_target_free(&t);

    /* The password from a file (its newline dropped); not both. */
    char path[] = "/tmp/holdfast-test-redispw.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "from-file\n", 10) == 10);
    close(fd);
    CHECK(parse("redis://gateway@127.0.0.1:1", path, &t, err) == HF_OK);
    CHECK_STR_EQ(t.user, "gateway");
    CHECK_STR_EQ(t.password, "from-file");
    hf_redis_target_free(&t);
    CHECK(parse("redis://:inline@127.0.0.1:1", path, &t, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "give one") != NULL);
    CHECK(strstr(err, "inline") == NULL);
    unlink(path);
    CHECK(parse("redis://127.0.0.1:1", path, &t, err) == HF_ERR_INVALID); /* gone */
    CHECK(strstr(err, path) != NULL);

    /* Refusals, never quoting the password. */
    CHECK(parse("redis://gateway@127.0.0.1:1", NULL, &t, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "without a password") != NULL);
    CHECK(parse("rediss://:pw@h:1", NULL, &t, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "TLS") != NULL);
    CHECK(parse("http://h:1", NULL, &t, err) == HF_ERR_INVALID);
    CHECK(parse("redis://:topsecret@h:0", NULL, &t, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "topsecret") == NULL);
    CHECK(parse("redis://:topsecret@h:1/x", NULL, &t, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "topsecret") == NULL);
    CHECK(parse("redis://:bad%zzescape@h:1", NULL, &t, err) == HF_ERR_INVALID);
    CHECK(strstr(err, "escape") == NULL || strstr(err, "bad%zz") == NULL);
    CHECK(parse("redis://:a%00b@h:1", NULL, &t, err) == HF_ERR_INVALID);
    CHECK(parse("redis://:pw@:6379", NULL, &t, err) == HF_ERR_INVALID);
    CHECK(parse("redis://h:6379?ssl=true", NULL, &t, err) == HF_ERR_INVALID);
    char longhost[400] = "redis://";
    memset(longhost + 8, 'h', 300);
    strcpy(longhost + 308, ":1");
    CHECK(parse(longhost, NULL, &t, err) == HF_ERR_INVALID);

    /* Nothing listens on port 1: unavailable, not refused. */
    CHECK(parse("redis://:pw@127.0.0.1:1", NULL, &t, err) == HF_OK);
    hf_err_t rc = HF_OK;
    CHECK(hf_redis_connect(&t, 500, &rc, err, sizeof err) == NULL);
    CHECK_INT_EQ(rc, HF_ERR_UNAVAILABLE);
    CHECK(strstr(err, "pw") == NULL || strstr(err, ":pw") == NULL);
    hf_redis_target_free(&t);
    CHECK_MAIN_END();
}
