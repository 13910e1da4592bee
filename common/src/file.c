/* file.c - see file.h. */
#include "holdfast/file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "holdfast/alloc.h"
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

hf_err_t hf_file_read_secret(const char *path, size_t max, char **out, char *errbuf,
                             size_t errbuf_size)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errbuf_size, "%s: %s", path, strerror(errno));
        return HF_ERR_IO;
    }
    char *buf = hf_malloc(max + 2);
    size_t n = fread(buf, 1, max + 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || n > max) {
        snprintf(errbuf, errbuf_size, "%s: %s", path, failed ? "read error" : "file too large");
        buf[n < max + 1 ? n : max + 1] = '\0';
        hf_free_secret(buf);
        return failed ? HF_ERR_IO : HF_ERR_TOO_LARGE;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    *out = buf;
    return HF_OK;
}
