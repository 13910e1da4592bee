/* test_gateway_heads.c - the relay's heartbeat line (hfctl:heads) as the
 * gateway parses it: the epoch and each partition's head; anything
 * malformed is refused as a whole. */
#include <string.h>

#include "check.h"
#include "holdfast/alloc.h"
#include "redis_sub.h"

static hf_err_t parse(const char *text, char *epoch, gw_head_t **heads, size_t *n)
{
    *heads = NULL;
    *n = 0;
    return gw_heads_parse(text, strlen(text), epoch, 65, heads, n);
}

static void test_valid(void)
{
    char epoch[65];
    gw_head_t *heads;
    size_t n;
    CHECK_INT_EQ(parse("ac82732d7331c529 0:17 3:4 7:1099511627776", epoch, &heads, &n), HF_OK);
    CHECK_STR_EQ(epoch, "ac82732d7331c529");
    CHECK_INT_EQ(n, 3);
    CHECK_INT_EQ(heads[0].partition, 0);
    CHECK_INT_EQ(heads[0].offset, 17);
    CHECK_INT_EQ(heads[1].partition, 3);
    CHECK_INT_EQ(heads[1].offset, 4);
    CHECK_INT_EQ(heads[2].offset, 1099511627776LL);
    hf_free(heads);

    /* a relay that has published nothing yet names only its epoch */
    CHECK_INT_EQ(parse("e1", epoch, &heads, &n), HF_OK);
    CHECK_STR_EQ(epoch, "e1");
    CHECK_INT_EQ(n, 0);
    CHECK(heads == NULL);

    CHECK_INT_EQ(parse("e-1_x  2:0 ", epoch, &heads, &n), HF_OK);
    CHECK_INT_EQ(n, 1);
    CHECK_INT_EQ(heads[0].partition, 2);
    CHECK_INT_EQ(heads[0].offset, 0);
    hf_free(heads);

    char many[20000] = "e";
    for (int p = 0; p < 1000; p++)
        snprintf(many + strlen(many), sizeof many - strlen(many), " %d:%d", p, p * 10);
    CHECK_INT_EQ(parse(many, epoch, &heads, &n), HF_OK);
    CHECK_INT_EQ(n, 1000);
    CHECK_INT_EQ(heads[999].partition, 999);
    CHECK_INT_EQ(heads[999].offset, 9990);
    hf_free(heads);
}

static void test_refused(void)
{
    static const char *bad[] = {
        "",                        /* no epoch */
        " 0:1",                    /* no epoch */
        "e\t0:1",                  /* not a space */
        "e 0:",                    /* no offset */
        "e :5",                    /* no partition */
        "e 0-5",                   /* no colon */
        "e 0:5x",                  /* trailing garbage */
        "e 0:5:6",                 /* three fields */
        "e -1:5",                  /* negative */
        "e 0:-5",                  /* negative */
        "e 2147483648:0",          /* partition beyond int32 */
        "e 0:4611686018427387904", /* offset 2^62 */
        "e 0:1234567890123456789", /* 19 digits */
        "e/x 0:1",                 /* not an epoch character */
        "e\xc3\xa9 0:1",           /* nor is UTF-8 */
    };
    char epoch[65];
    gw_head_t *heads;
    size_t n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hf_err_t rc = parse(bad[i], epoch, &heads, &n);
        CHECK_INT_EQ(rc, HF_ERR_INVALID);
        if (rc != HF_ERR_INVALID)
            fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
        CHECK(heads == NULL);
    }
    char long_epoch[80];
    memset(long_epoch, 'a', 65);
    strcpy(long_epoch + 65, " 0:1");
    CHECK_INT_EQ(parse(long_epoch, epoch, &heads, &n), HF_ERR_INVALID);
    long_epoch[64] = ' '; /* 64 bytes: the longest epoch */
    CHECK_INT_EQ(parse(long_epoch, epoch, &heads, &n), HF_OK);
    CHECK_INT_EQ(strlen(epoch), 64);
    hf_free(heads);
    /* not NUL-terminated: only len bytes are read */
    const char text[] = {'e', ' ', '1', ':', '2'};
    CHECK_INT_EQ(gw_heads_parse(text, sizeof text, epoch, sizeof epoch, &heads, &n), HF_OK);
    CHECK_INT_EQ(n, 1);
    CHECK_INT_EQ(heads[0].offset, 2);
    hf_free(heads);
}

int main(void)
{
    test_valid();
    test_refused();
    CHECK_MAIN_END();
}
