/* Answering and reading HTTP requests with Portico's rules: every response
 * carries the security headers; bodies and fields have size limits. The
 * transport only: pages are rendered above it (reply.h). */
#include "web.h"

#include "cookie.h"
#include "framing.h"
#include "metrics.h"
#include "netaddr.h"
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_BODY FRAMING_BODY_MAX
/* Bodies up to this size go out in the same write as the headers. */
#define ONE_WRITE_MAX (256 * 1024)

static const char *s_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

/* The Content-Security-Policy, around the form-action sources a page may
 * add (extra_csp_form_action). */
#define CSP_HEAD                                                                                                       \
    "Content-Security-Policy: default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "               \
    "connect-src 'self'; form-action 'self'"
#define CSP_TAIL "; frame-ancestors 'none'; base-uri 'none'\r\n"

/* Whether a comma-separated header value lists token (any case). */
static bool s_lists(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    for (const char *p = value; *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t end = n;
        while (end > 0 && (p[end - 1] == ' ' || p[end - 1] == '\t'))
            end--;
        if (end == tlen && strncasecmp(p, token, tlen) == 0)
            return true;
        p += n;
    }
    return false;
}

/* Whether the connection ends after this answer; the answer then says so
 * (RFC 9112 9.6). It does on the operations listener, which keeps nothing
 * alive; when the request asked for it (civetweb's rule: a Connection
 * header without keep-alive, or HTTP/1.0 without one); when a handler set
 * r->close; when a body is left unread: civetweb would otherwise read
 * and drop all of it, however long it is, before the next request; and
 * while the web stops (the gate closes what is left idle). */
static bool s_closes(const web_req_t *r)
{
    if (r->ops || r->close || r->body_state < 0 || service_stopping())
        return true;
    if (r->body_state == 0 && (r->ri->content_length > 0 || mg_get_header(r->conn, "Transfer-Encoding")))
        return true;
    const char *c = mg_get_header(r->conn, "Connection");
    if (c)
        return !s_lists(c, "keep-alive");
    return !r->ri->http_version || strcmp(r->ri->http_version, "1.1") != 0;
}

void web_send(web_req_t *r, int status, const char *content_type, const char *body, size_t len,
              const char *extra_headers)
{
    sbuf_t h;
    sbuf_init(&h);
    sbuf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status, s_reason(status),
                content_type, len);
    if (!extra_headers || !strstr(extra_headers, "Cache-Control:"))
        sbuf_puts(&h, "Cache-Control: no-store\r\n");
    sbuf_puts(&h, "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: ");
    sbuf_puts(&h, r->referrer_policy ? r->referrer_policy : "same-origin");
    sbuf_puts(&h, "\r\n" CSP_HEAD);
    if (r->extra_csp_form_action) {
        sbuf_puts(&h, " ");
        sbuf_puts(&h, r->extra_csp_form_action);
    }
    sbuf_puts(&h, CSP_TAIL "X-Request-Id: ");
    sbuf_puts(&h, r->request_id);
    sbuf_puts(&h, "\r\n");
    /* Browsers that reached us over https stay on https. */
    if (web_cfg.secure)
        sbuf_puts(&h, "Strict-Transport-Security: max-age=31536000\r\n");
    if (r->retry_after_s > 0)
        sbuf_printf(&h, "Retry-After: %d\r\n", r->retry_after_s);
    if (r->allow)
        sbuf_printf(&h, "Allow: %s\r\n", r->allow);
    if (s_closes(r)) {
        mg_disable_connection_keep_alive(r->conn);
        sbuf_puts(&h, "Connection: close\r\n");
    } else {
        sbuf_printf(&h, "Keep-Alive: timeout=%d\r\n", WEB_KEEP_ALIVE_MS / 1000);
    }
    for (int i = 0; i < r->nset_cookie; i++) {
        sbuf_puts(&h, "Set-Cookie: ");
        sbuf_puts(&h, r->set_cookie[i]);
        sbuf_puts(&h, "\r\n");
    }
    if (extra_headers)
        sbuf_puts(&h, extra_headers);
    sbuf_puts(&h, "\r\n");
    /* Headers and body in one write: one segment to the gate, which then
     * relays the answer in one go rather than two. */
    bool with_body = len && strcmp(r->ri->request_method, "HEAD") != 0;
    size_t head_len = h.len;
    if (with_body && len <= ONE_WRITE_MAX && !h.failed)
        sbuf_append(&h, body, len);
    bool joined = with_body && h.len == head_len + len;
    mg_write(r->conn, h.data, joined ? h.len : head_len);
    if (with_body && !joined)
        mg_write(r->conn, body, len);
    sbuf_free(&h);
    r->status = status;
}

/* Per client: an IPv6 address counts by its /64 (netaddr.h). */
static void s_rate_key(web_req_t *r, const char *what, char *key, size_t key_size)
{
    char client[80];
    netaddr_client_key(r->addr, client, sizeof client);
    snprintf(key, key_size, "%s|%s", what, client);
}

int web_rate_wait(web_req_t *r, const char *what, long per_minute, bool take)
{
    char key[128];
    s_rate_key(r, what, key, sizeof key);
    int wait = ratelimit_check(web_limits, key, (double)per_minute, (double)per_minute, bus_now_ms(), take);
    if (wait) {
        char labels[64];
        snprintf(labels, sizeof labels, "what=\"%s\"", what);
        metrics_inc("portico_http_rate_limited_total", labels, 1);
        r->retry_after_s = wait;
    }
    return wait;
}

void web_rate_charge(web_req_t *r, const char *what, long per_minute)
{
    char key[128];
    s_rate_key(r, what, key, sizeof key);
    ratelimit_check(web_limits, key, (double)per_minute, (double)per_minute, bus_now_ms(), true);
}

void web_redirect(web_req_t *r, const char *location)
{
    sbuf_t h;
    sbuf_init(&h);
    /* Location is either a local path we checked or a URL we built. */
    if (location[0] == '/')
        sbuf_printf(&h, "Location: %s%s\r\n", web_cfg.public_path, location);
    else
        sbuf_printf(&h, "Location: %s\r\n", location);
    web_send(r, 303, "text/plain; charset=utf-8", "", 0, h.data);
    sbuf_free(&h);
}

int web_status_for(const bus_error_t *err)
{
    switch (err->code) {
    case PORTICO__ERROR_CODE__BAD_REQUEST:
        return 400;
    case PORTICO__ERROR_CODE__NOT_FOUND:
        return 404;
    case PORTICO__ERROR_CODE__CONFLICT:
        return 409;
    case PORTICO__ERROR_CODE__FORBIDDEN:
        return 403;
    case PORTICO__ERROR_CODE__UNAUTHORIZED:
        return 401;
    case PORTICO__ERROR_CODE__RATE_LIMITED:
        return 429;
    case PORTICO__ERROR_CODE__TIMEOUT:
        return 504;
    case PORTICO__ERROR_CODE__UPSTREAM:
    case PORTICO__ERROR_CODE__TLS:
        return 502;
    case PORTICO__ERROR_CODE__UNAVAILABLE:
        return 503;
    default:
        return 500;
    }
}

static int s_read_body(web_req_t *r)
{
    if (r->body_state)
        return r->body_state;
    long long declared = r->ri->content_length;
    if (declared > MAX_BODY) {
        r->body_state = -1;
        return -1;
    }
    size_t cap = declared > 0 ? (size_t)declared + 1 : 4096;
    r->body = malloc(cap);
    if (!r->body) {
        r->body_state = -1;
        return -1;
    }
    r->body_cap = cap;
    size_t len = 0;
    for (;;) {
        if (declared > 0 && len == (size_t)declared)
            break; /* whole: a body of exactly MAX_BODY too */
        if (len + 1 >= cap) {
            if (len > MAX_BODY) {
                r->body_state = -1;
                return -1;
            }
            /* Not realloc: it could free the old copy unwiped. */
            char *nb = malloc(cap * 2);
            if (!nb) {
                r->body_state = -1;
                return -1;
            }
            memcpy(nb, r->body, len);
            web_body_free(r);
            r->body = nb;
            r->body_cap = cap *= 2;
        }
        int n = mg_read(r->conn, r->body + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (len > MAX_BODY) {
        r->body_state = -1;
        return -1;
    }
    r->body[len] = '\0';
    r->body_len = len;
    r->body_state = 1;
    return 1;
}

void web_body_free(web_req_t *r)
{
    if (r->body)
        explicit_bzero(r->body, r->body_cap);
    free(r->body);
    r->body = NULL;
    r->body_cap = 0;
}

bool web_body_failed(web_req_t *r)
{
    return s_read_body(r) < 0;
}

static int s_get_var(const char *data, size_t len, const char *name, char *out, size_t out_size)
{
    if (!data)
        return WEB_VAR_ABSENT;
    int n = mg_get_var2(data, len, name, out, out_size, 0);
    if (n == -1)
        return WEB_VAR_ABSENT;
    if (n < 0) /* -2: too small, or bad encoding */
        return WEB_VAR_TOO_LONG;
    if (memchr(out, '\0', (size_t)n)) {
        out[0] = '\0';
        return WEB_VAR_NUL;
    }
    return n;
}

int web_form(web_req_t *r, const char *name, char *out, size_t out_size)
{
    out[0] = '\0';
    if (s_read_body(r) < 0)
        return WEB_VAR_TOO_LONG;
    return s_get_var(r->body, r->body_len, name, out, out_size);
}

int web_query(web_req_t *r, const char *name, char *out, size_t out_size)
{
    out[0] = '\0';
    const char *q = r->ri->query_string;
    return s_get_var(q, q ? strlen(q) : 0, name, out, out_size);
}

int web_cookie(web_req_t *r, const char *name, char *out, size_t out_size)
{
    const char *lines[MG_MAX_HEADERS];
    size_t n = 0;
    for (int i = 0; i < r->ri->num_headers && n < MG_MAX_HEADERS; i++)
        if (!strcasecmp(r->ri->http_headers[i].name, "Cookie"))
            lines[n++] = r->ri->http_headers[i].value;
    int len = cookie_get(lines, n, name, out, out_size);
    return len < 0 ? -1 : len;
}

const char *web_header(web_req_t *r, const char *name)
{
    return mg_get_header(r->conn, name);
}

int64_t web_path_id(web_req_t *r, const char *prefix, const char **rest)
{
    const char *path = r->path ? r->path : r->ri->local_uri;
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0)
        return -1;
    const char *p = path + pl;
    int64_t id = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 15) {
        id = id * 10 + (*p - '0');
        p++;
        digits++;
    }
    if (!digits || id <= 0 || (*p && *p != '/'))
        return -1;
    if (rest)
        *rest = p;
    return id;
}

void web_format_time(int64_t epoch_s, char *out, size_t out_size)
{
    if (epoch_s <= 0) {
        snprintf(out, out_size, "never");
        return;
    }
    time_t t = (time_t)epoch_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, out_size, "%Y-%m-%d %H:%M UTC", &tm);
}
