/* err.c - names of hf_err_t. */
#include "holdfast/err.h"

const char *hf_err_str(hf_err_t err)
{
    switch (err) {
    case HF_OK:
        return "ok";
    case HF_ERR_INVALID:
        return "invalid input";
    case HF_ERR_TOO_LARGE:
        return "too large";
    case HF_ERR_NOT_FOUND:
        return "not found";
    case HF_ERR_CONFLICT:
        return "conflict";
    case HF_ERR_UNAVAILABLE:
        return "dependency unavailable";
    case HF_ERR_TIMEOUT:
        return "timed out";
    case HF_ERR_IO:
        return "i/o error";
    case HF_ERR_INTERNAL:
        return "internal error";
    case HF_ERR_SHUTDOWN:
        return "shutting down";
    case HF_ERR_AUTH:
        return "not authenticated";
    }
    return "unknown error";
}
