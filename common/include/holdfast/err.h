/* err.h - the project's one error type.
 *
 * 0 is success, negative values are errors. Every function that can fail
 * returns an hf_err_t (or NULL plus an errbuf for constructors) and the
 * caller must look at it. */
#ifndef HOLDFAST_ERR_H
#define HOLDFAST_ERR_H

typedef enum hf_err {
    HF_OK = 0,
    HF_ERR_INVALID = -1,     /* input is malformed or violates a rule */
    HF_ERR_TOO_LARGE = -2,   /* input exceeds a configured limit */
    HF_ERR_NOT_FOUND = -3,   /* the thing asked for does not exist */
    HF_ERR_CONFLICT = -4,    /* conflicts with existing state (e.g. idempotency key reuse) */
    HF_ERR_UNAVAILABLE = -5, /* a dependency is unreachable; retry later */
    HF_ERR_TIMEOUT = -6,     /* an operation did not finish in time; retry later */
    HF_ERR_IO = -7,          /* a system call failed */
    HF_ERR_INTERNAL = -8,    /* a bug or an unexpected state */
    HF_ERR_SHUTDOWN = -9,    /* the process is stopping */
    HF_ERR_AUTH = -10,       /* credentials missing, malformed, forged or expired */
} hf_err_t;

/* Static, never NULL. */
const char *hf_err_str(hf_err_t err);

#endif
