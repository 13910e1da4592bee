/* channel.c - channel-name validation; the SQL twin is holdfast.channel_is_valid(). */
#include "holdfast/channel.h"

#include <stdbool.h>

static bool channel_is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool channel_is_allowed(unsigned char c)
{
    return channel_is_alnum(c) || c == '_' || c == '.' || c == ':' || c == '@' || c == '=' ||
           c == '-';
}

hf_err_t hf_channel_validate(const char *name, size_t len, const char **why)
{
    const char *reason = NULL;
    if (len == 0)
        reason = "channel name is empty";
    else if (len > HF_CHANNEL_MAX)
        reason = "channel name is longer than 200 bytes";
    else if (!channel_is_alnum((unsigned char)name[0]))
        reason = "channel name must start with a letter or digit";
    for (size_t i = 1; !reason && i < len; i++)
        if (!channel_is_allowed((unsigned char)name[i]))
            reason = "channel name may only contain letters, digits and _ . : @ = -";
    if (why)
        *why = reason;
    return reason ? HF_ERR_INVALID : HF_OK;
}

hf_err_t hf_event_type_validate(const char *type, size_t len, const char **why)
{
    const char *reason = NULL;
    if (len == 0)
        reason = "type is empty";
    else if (len > HF_EVENT_TYPE_MAX)
        reason = "type is longer than 100 bytes";
    else if (!channel_is_alnum((unsigned char)type[0]))
        reason = "type must start with a letter or digit";
    for (size_t i = 1; !reason && i < len; i++)
        if (!channel_is_allowed((unsigned char)type[i]) && type[i] != '/')
            reason = "type may only contain letters, digits and _ . : @ = - /";
    if (why)
        *why = reason;
    return reason ? HF_ERR_INVALID : HF_OK;
}
