/* http_parse.h - the pure parts of HTTP request handling (see http.h).
 *
 * Owns the decisions http.c makes on what a client sent, kept apart from
 * libwebsockets so that they can be tested and fuzzed without a socket:
 * splitting a query argument, reading Content-Length, admitting a body
 * against the limit, matching a path against the route table, the JSON
 * error shape, and CORS (which origins may call the API from a browser,
 * and the headers that tell the browser so). http.c copies headers and
 * query fragments out of lws and hands them here.
 *
 * Threading: no state; any thread. Ownership is said per function. */
#ifndef HOLDFAST_HTTP_PARSE_H
#define HOLDFAST_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "holdfast/buf.h"
#include "holdfast/err.h"
#include "holdfast/http.h"

#define HF_HTTP_QUERY_ARGS_MAX 16   /* query arguments kept per request; the rest are ignored */
#define HF_HTTP_QUERY_FRAG_MAX 1024 /* bytes of one argument copied out of lws, NUL included */
/* lws' max_http_header_data of every service: all of a request's headers
 * fit in it, so no header value is longer (a bearer token may take 8 KiB). */
#define HF_HTTP_HEADER_MAX 12288

/* Splits one URL-decoded query fragment "name=value" at its first '='
 * ("name" alone has the value ""). *name and *value are the caller's, to
 * free with hf_free. */
void hf_http_query_split(const char *frag, char **name, char **value);

/* The Content-Length header's value as a number; 0 when absent (NULL). */
size_t hf_http_content_length(const char *value);

/* Whether a route that takes a body may start reading it: 0 yes, 411 when
 * the request has no Content-Length header, 413 when it announces more
 * than max_body bytes. */
int hf_http_body_status(bool has_content_length, size_t content_length, size_t max_body);

/* pattern is an exact path, or a prefix when it ends in '*'. */
bool hf_http_path_matches(const char *pattern, const char *path);

/* The first of routes[0..n) matching method and path, or NULL. Sets
 * *path_known when some route has the path (405 rather than 404), and
 * leaves it as it was otherwise, so several tables can be searched in a row. */
const hf_http_route_t *hf_http_route_find(const hf_http_route_t *routes, size_t n,
                                          const char *method, const char *path, bool *path_known);

/* Appends {"error":{"code":code,"message":message}} and a newline. */
void hf_http_error_body(hf_buf_t *out, const char *code, const char *message);

/* The methods routes[0..n) serve on path, then OPTIONS, as "GET, OPTIONS"
 * (the preflight's Access-Control-Allow-Methods), into out. */
void hf_http_route_methods(const hf_http_route_t *routes, size_t n, const char *path, char *out,
                           size_t out_size);

/* CORS: the origins whose pages may call the API from a browser. Only
 * exact origins ("https://app.example.com", "http://127.0.0.1:8080"); "*"
 * allows any, and only when listed by itself. Responses never carry
 * Access-Control-Allow-Credentials: requests authenticate with a bearer
 * token the page sets itself, never with cookies, so an allowed origin is
 * echoed as itself (never "*") and browsers send no ambient credentials. */
typedef struct hf_http_cors {
    char **origins; /* owned */
    size_t norigins;
    bool any; /* "*": every origin */
} hf_http_cors_t;

#define HF_HTTP_CORS_MAX_AGE_S 600 /* how long a browser may cache a preflight's answer */

/* Parses a comma-separated list (spaces around entries ignored); NULL or
 * "" is none (CORS off: no CORS headers at all). HF_ERR_INVALID with the
 * reason in errbuf for an entry that is not an exact origin ("null", a
 * path, a trailing '/', upper case, "*" beside others). On success *cors
 * is the caller's, to free with hf_http_cors_free. */
hf_err_t hf_http_cors_parse(const char *list, hf_http_cors_t *cors, char *errbuf,
                            size_t errbuf_size);
void hf_http_cors_free(hf_http_cors_t *cors);
/* Some origin is allowed: responses carry Vary: Origin. */
bool hf_http_cors_enabled(const hf_http_cors_t *cors);
/* origin (a request's Origin header, NULL when none) may read responses. */
bool hf_http_cors_allows(const hf_http_cors_t *cors, const char *origin);

/* The CORS headers of one response, appended to out as "Name: value\r\n"
 * lines: nothing when CORS is off; Vary: Origin when on; for an allowed
 * origin also Access-Control-Allow-Origin (the origin itself) and, on a
 * preflight, Access-Control-Allow-Methods (methods), -Allow-Headers and
 * -Max-Age, else Access-Control-Expose-Headers (Retry-After). */
void hf_http_cors_headers(hf_buf_t *out, const hf_http_cors_t *cors, const char *origin,
                          bool preflight, const char *methods);

#endif
