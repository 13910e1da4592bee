/* The byte buffer and its JSON escaping. */
#include <string.h>

#include "check.h"
#include "holdfast/alloc.h"
#include "holdfast/buf.h"

int main(void)
{
    hf_buf_t b = HF_BUF_INIT;
    hf_buf_append(&b, "ab\0c", 4);
    CHECK_INT_EQ(b.len, 4);
    CHECK(b.data[4] == '\0');
    hf_buf_printf(&b, "%d-%s", 42, "x");
    CHECK_MEM_EQ(b.data, b.len, "ab\0c42-x", 8);
    hf_buf_reset(&b);
    char big[5000];
    memset(big, 'z', sizeof big);
    hf_buf_printf(&b, "%.*s", (int)sizeof big, big); /* longer than the first guess */
    CHECK_INT_EQ(b.len, sizeof big);
    hf_buf_reset(&b);
    hf_buf_append_json_escaped(&b, "q\"b\\n\n\x01\x7f\xc3\xa9", 10);
    CHECK_STR_EQ(b.data, "q\\\"b\\\\n\\n\\u0001\\u007f\xc3\xa9");
    size_t len;
    char *owned = hf_buf_release(&b, &len);
    CHECK(b.data == NULL && b.len == 0);
    CHECK_INT_EQ(len, strlen(owned));
    hf_free(owned);
    hf_buf_free(&b);
    CHECK_MAIN_END();
}
