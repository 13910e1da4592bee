/* test_uuid.c - version 7 ids: layout (time, version, variant), text form,
 * time order, and the same bytes as holdfast.uuid_v7()'s layout. */
#include <string.h>
#include <time.h>

#include "check.h"
#include "holdfast/uuid.h"

static void test_layout(void)
{
    const uint8_t zero[10] = {0},
                  ones[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    char id[HF_UUID_TEXT_LEN + 1];
    hf_uuid_v7_at(0x0123456789abULL, zero, id);
    CHECK_STR_EQ(id, "01234567-89ab-7000-8000-000000000000");
    hf_uuid_v7_at(0x0123456789abULL, ones, id);
    CHECK_STR_EQ(id, "01234567-89ab-7fff-bfff-ffffffffffff");
}

static void test_now_in_order(void)
{
    char a[HF_UUID_TEXT_LEN + 1], b[HF_UUID_TEXT_LEN + 1];
    hf_uuid_v7(a);
    CHECK_INT_EQ(strlen(a), HF_UUID_TEXT_LEN);
    CHECK(a[14] == '7');
    CHECK(strchr("89ab", a[19]) != NULL);
    struct timespec pause = {.tv_nsec = 2000000};
    nanosleep(&pause, NULL);
    hf_uuid_v7(b);
    CHECK(strcmp(a, b) < 0); /* a later millisecond sorts later */
    /* the time prefix is now, in ms */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long now = (unsigned long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, ms = 0;
    for (int i = 0; i < 13; i++)
        if (b[i] != '-')
            ms = ms * 16 + (unsigned long long)(b[i] <= '9' ? b[i] - '0' : b[i] - 'a' + 10);
    CHECK(ms <= now && now - ms < 1000);
}

int main(void)
{
    test_layout();
    test_now_in_order();
    CHECK_MAIN_END();
}
