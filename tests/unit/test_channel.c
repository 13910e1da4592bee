/* Channel-name and event-type rules (the SQL twins are checked in the ingest test). */
#include <string.h>

#include "check.h"
#include "holdfast/channel.h"

static int valid(const char *s)
{
    return hf_channel_validate(s, strlen(s), NULL) == HF_OK;
}

int main(void)
{
    CHECK(valid("a"));
    CHECK(valid("orders:42"));
    CHECK(valid("user@example.com"));
    CHECK(valid("A-b_c.d:e@f=g"));
    CHECK(valid("0"));
    CHECK(!valid(""));
    CHECK(!valid("-leading-dash"));
    CHECK(!valid(".hidden"));
    CHECK(!valid("a/b"));
    CHECK(!valid("../etc/passwd"));
    CHECK(!valid("orders:*"));
    CHECK(!valid("what?"));
    CHECK(!valid("with space"));
    CHECK(!valid("tab\there"));
    CHECK(!valid("caf\xc3\xa9"));
    CHECK(hf_channel_validate("a\0b", 3, NULL) != HF_OK);

    char name[HF_CHANNEL_MAX + 2];
    memset(name, 'x', sizeof name);
    CHECK(hf_channel_validate(name, HF_CHANNEL_MAX, NULL) == HF_OK);
    const char *why = NULL;
    CHECK(hf_channel_validate(name, HF_CHANNEL_MAX + 1, &why) == HF_ERR_INVALID);
    CHECK(why && strstr(why, "200"));

    CHECK(hf_event_type_validate("order.created", 13, NULL) == HF_OK);
    CHECK(hf_event_type_validate("a/b", 3, NULL) == HF_OK);
    CHECK(hf_event_type_validate("a b", 3, NULL) != HF_OK);
    CHECK(hf_event_type_validate("", 0, NULL) != HF_OK);
    CHECK(hf_event_type_validate(name, HF_EVENT_TYPE_MAX + 1, NULL) != HF_OK);
    CHECK_MAIN_END();
}
