/* file.h - small file operations the daemons share.
 *
 * hf_file_write_atomic() is how a daemon announces readiness through a
 * file: readers polling for the path either see nothing or all of it. */
#ifndef HOLDFAST_FILE_H
#define HOLDFAST_FILE_H

#include "holdfast/err.h"

/* Writes text to path through a temporary file in the same folder renamed
 * over it. HF_ERR_IO (logged, with the path and errno) on failure; the
 * temporary file is removed then. */
hf_err_t hf_file_write_atomic(const char *path, const char *text);

#endif
