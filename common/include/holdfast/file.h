/* file.h - small file operations the daemons share.
 *
 * hf_file_write_atomic() is how a daemon announces readiness through a
 * file: readers polling for the path either see nothing or all of it.
 * hf_file_read_secret() is how passwords and keys are read from files
 * (Kubernetes Secrets mounted as files, the local stack's .run/). */
#ifndef HOLDFAST_FILE_H
#define HOLDFAST_FILE_H

#include <stddef.h>

#include "holdfast/err.h"

/* Writes text to path through a temporary file in the same folder renamed
 * over it. HF_ERR_IO (logged, with the path and errno) on failure; the
 * temporary file is removed then. */
hf_err_t hf_file_write_atomic(const char *path, const char *text);

/* Reads the whole file (at most max bytes) into *out, NUL-terminated, its
 * trailing newlines removed (a file written by `echo` or a Secret made
 * with --from-literal both work). The caller frees *out with
 * hf_free_secret(). On error returns HF_ERR_IO or HF_ERR_TOO_LARGE with
 * "PATH: reason" in errbuf (never any of the content). */
hf_err_t hf_file_read_secret(const char *path, size_t max, char **out, char *errbuf,
                             size_t errbuf_size);

#endif
