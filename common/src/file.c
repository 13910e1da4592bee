/* file.c - see file.h. */
#include "holdfast/file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "holdfast/log.h"

hf_err_t hf_file_write_atomic(const char *path, const char *text)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        hf_error("%s: path too long", path);
        return HF_ERR_IO;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        hf_error("writing %s: %s", tmp, strerror(errno));
        return HF_ERR_IO;
    }
    bool ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        hf_error("writing %s: %s", path, strerror(errno));
        unlink(tmp);
        return HF_ERR_IO;
    }
    return HF_OK;
}
