/* lws_log.c - libwebsockets' log into hf_log; see lws_log.h. */
#include "holdfast/lws_log.h"

#include <string.h>

#include <libwebsockets.h>

#include "holdfast/log.h"

static const char *lws_log_mute; /* set once, before lws runs */

static void lws_log_line(int level, const char *line)
{
    if (lws_log_mute && strstr(line, lws_log_mute))
        return;
    hf_log(level == LLL_ERR ? HF_LOG_ERROR : HF_LOG_WARN, "lws: %.*s", (int)strcspn(line, "\n"),
           line);
}

void hf_lws_log_init(const char *mute)
{
    lws_log_mute = mute;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_line);
}
