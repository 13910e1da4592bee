/* http_parse.c - the pure parts of HTTP request handling; see http_parse.h. */
#include "holdfast/http_parse.h"

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
