/* channel.h - channel-name rules, shared by every service and the SQL schema.
 *
 * A channel name is 1..HF_CHANNEL_MAX bytes of [A-Za-z0-9_.:@=-], starting
 * with a letter or digit. No '/', '*', '?' or spaces: names appear in URL
 * paths, Redis channel names and token glob patterns, and must never be
 * mistaken for a pattern or a path. holdfast.channel_is_valid() in SQL is
 * the same rule. */
#ifndef HOLDFAST_CHANNEL_H
#define HOLDFAST_CHANNEL_H

#include <stddef.h>

#include "holdfast/err.h"

#define HF_CHANNEL_MAX 200

/* Returns HF_OK or HF_ERR_INVALID; on error, why (if not NULL) points to a
 * static explanation. */
hf_err_t hf_channel_validate(const char *name, size_t len, const char **why);

#define HF_EVENT_TYPE_MAX 100

/* Event types: the channel rule plus '/', at most HF_EVENT_TYPE_MAX bytes;
 * holdfast.event_type_is_valid() in SQL. */
hf_err_t hf_event_type_validate(const char *type, size_t len, const char **why);

#endif
