/* http_parse.c - the pure parts of HTTP request handling; see http_parse.h. */
#include "holdfast/http_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "holdfast/alloc.h"

void hf_http_query_split(const char *frag, char **name, char **value)
{
    const char *eq = strchr(frag, '=');
    *name = eq ? hf_strndup(frag, (size_t)(eq - frag)) : hf_strdup(frag);
    *value = hf_strdup(eq ? eq + 1 : "");
}

size_t hf_http_content_length(const char *value)
{
    return value ? strtoull(value, NULL, 10) : 0;
}

int hf_http_body_status(bool has_content_length, size_t content_length, size_t max_body)
{
    if (!has_content_length)
        return 411;
    if (content_length > max_body)
        return 413;
    return 0;
}

bool hf_http_path_matches(const char *pattern, const char *path)
{
    size_t plen = strlen(pattern);
    if (plen && pattern[plen - 1] == '*')
        return strncmp(pattern, path, plen - 1) == 0;
    return strcmp(pattern, path) == 0;
}

const hf_http_route_t *hf_http_route_find(const hf_http_route_t *routes, size_t n,
                                          const char *method, const char *path, bool *path_known)
{
    for (size_t i = 0; i < n; i++) {
        if (!hf_http_path_matches(routes[i].path, path))
            continue;
        *path_known = true;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
    }
    return NULL;
}

void hf_http_error_body(hf_buf_t *out, const char *code, const char *message)
{
    hf_buf_append_str(out, "{\"error\":{\"code\":\"");
    hf_buf_append_json_escaped(out, code, strlen(code));
    hf_buf_append_str(out, "\",\"message\":\"");
    hf_buf_append_json_escaped(out, message, strlen(message));
    hf_buf_append_str(out, "\"}}\n");
}

void hf_http_route_methods(const hf_http_route_t *routes, size_t n, const char *path, char *out,
                           size_t out_size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!hf_http_path_matches(routes[i].path, path))
            continue;
        bool seen = false; /* one method on several routes of the path */
        for (size_t j = 0; j < i && !seen; j++)
            seen = hf_http_path_matches(routes[j].path, path) &&
                   strcmp(routes[j].method, routes[i].method) == 0;
        if (!seen && len < out_size)
            len += (size_t)snprintf(out + len, out_size - len, "%s, ", routes[i].method);
    }
    if (len < out_size)
        snprintf(out + len, out_size - len, "OPTIONS");
}

/* An exact origin: http or https, a host, an optional port; nothing else
 * (an origin never has a path, a query or user info, and browsers send it
 * in lower case, so anything else could never match). */
static bool cors_origin_valid(const char *o, size_t n)
{
    size_t scheme;
    if (n > 7 && strncmp(o, "http://", 7) == 0)
        scheme = 7;
    else if (n > 8 && strncmp(o, "https://", 8) == 0)
        scheme = 8;
    else
        return false;
    if (n > 255)
        return false;
    bool port = false, v6 = o[scheme] == '[';
    size_t digits = 0;
    for (size_t i = scheme + v6; i < n; i++) {
        char c = o[i];
        if (port) {
            if (c < '0' || c > '9')
                return false;
            digits++;
        } else if (v6) { /* an IPv6 literal: [hex and colons] */
            if (c == ']')
                v6 = false;
            else if (!((c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == ':' || c == '.'))
                return false;
        } else if (c == ':' && i > scheme) {
            port = true;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
            return false;
        }
    }
    return !v6 && o[n - 1] != '.' && (!port || (digits >= 1 && digits <= 5));
}

hf_err_t hf_http_cors_parse(const char *list, hf_http_cors_t *cors, char *errbuf,
                            size_t errbuf_size)
{
    memset(cors, 0, sizeof *cors);
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 0)
            break;
        if (n == 1 && p[0] == '*') {
            cors->any = true;
        } else if (!cors_origin_valid(p, n)) {
            snprintf(errbuf, errbuf_size,
                     "cors-origins: '%.*s' is not an exact origin (scheme://host[:port], lower "
                     "case, no path or trailing '/'; '*' alone for any)",
                     (int)(n > 200 ? 200 : n), p);
            hf_http_cors_free(cors);
            return HF_ERR_INVALID;
        } else {
            cors->origins = hf_realloc(cors->origins, (cors->norigins + 1) * sizeof *cors->origins);
            cors->origins[cors->norigins++] = hf_strndup(p, n);
        }
        p += n;
        while (*p && *p != ',')
            p++;
    }
    if (cors->any && cors->norigins) {
        snprintf(errbuf, errbuf_size,
                 "cors-origins: '*' allows every origin; list it alone, not beside others");
        hf_http_cors_free(cors);
        return HF_ERR_INVALID;
    }
    return HF_OK;
}

void hf_http_cors_free(hf_http_cors_t *cors)
{
    for (size_t i = 0; i < cors->norigins; i++)
        hf_free(cors->origins[i]);
    hf_free(cors->origins);
    memset(cors, 0, sizeof *cors);
}

bool hf_http_cors_enabled(const hf_http_cors_t *cors)
{
    return cors && (cors->any || cors->norigins > 0);
}

bool hf_http_cors_allows(const hf_http_cors_t *cors, const char *origin)
{
    if (!hf_http_cors_enabled(cors) || !origin || !*origin)
        return false;
    /* Even with "*", an origin is echoed only when it is one: "null" (a
     * sandboxed frame, a file) or anything malformed gets nothing. */
    if (!cors_origin_valid(origin, strlen(origin)))
        return false;
    if (cors->any)
        return true;
    for (size_t i = 0; i < cors->norigins; i++)
        if (strcmp(cors->origins[i], origin) == 0)
            return true;
    return false;
}

void hf_http_cors_headers(hf_buf_t *out, const hf_http_cors_t *cors, const char *origin,
                          bool preflight, const char *methods)
{
    if (!hf_http_cors_enabled(cors))
        return;
    /* Whatever the origin: a cache must not hand one origin's answer to another. */
    hf_buf_append_str(out, "Vary: Origin\r\n");
    if (!hf_http_cors_allows(cors, origin))
        return;
    hf_buf_printf(out, "Access-Control-Allow-Origin: %s\r\n", origin);
    if (preflight)
        hf_buf_printf(
            out,
            "Access-Control-Allow-Methods: %s\r\n"
            "Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key\r\n"
            "Access-Control-Max-Age: %d\r\n",
            methods ? methods : "GET, POST, OPTIONS", HF_HTTP_CORS_MAX_AGE_S);
    else
        hf_buf_append_str(out, "Access-Control-Expose-Headers: Retry-After\r\n");
}
