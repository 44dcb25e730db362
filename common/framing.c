#include "framing.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Digits only, and few enough that the value cannot overflow. */
#define LENGTH_DIGITS_MAX 15

/* Exactly the ends civetweb takes (get_http_header_len): "\n\n", or
 * "\r\n\r\n". A head the gate thought whole and civetweb did not
 * ("x\n\r\n") would hold one of civetweb's threads until its own timeout,
 * past the gate's header deadline. */
size_t framing_head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (i > 0 && buf[i - 1] == '\r' && i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static bool s_is_name(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && !strncasecmp(name, want, len);
}

/* A character of a method or header name (RFC 9110 5.6.2: tchar). */
static bool s_is_tchar(char ch)
{
    unsigned char c = (unsigned char)ch;
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* One header line (no line ending): its framing, into *cl_count, *length
 * and *te. 0, or 400 for a line that is not "name: value". */
static int s_line(const char *line, size_t len, int *cl_count, long long *length, bool *te)
{
    if (len && (line[0] == ' ' || line[0] == '\t'))
        return 400; /* obsolete line folding */
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return 400;
    size_t name_len = (size_t)(colon - line);
    /* Only token characters: "Content-Length : 5" is read differently by
     * different servers, and civetweb stops reading headers at a line that
     * starts with a CR or a byte over 126, so a Content-Length after it
     * would frame a body here that civetweb runs as the next request. */
    for (size_t i = 0; i < name_len; i++)
        if (!s_is_tchar(line[i]))
            return 400;
    const char *v = colon + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (s_is_name(line, name_len, "transfer-encoding")) {
        *te = true;
    } else if (s_is_name(line, name_len, "content-length")) {
        size_t digits = (size_t)(end - v);
        if (++*cl_count > 1 || digits == 0 || digits > LENGTH_DIGITS_MAX)
            return 400;
        long long n = 0;
        for (const char *p = v; p < end; p++) {
            if (*p < '0' || *p > '9')
                return 400;
            n = n * 10 + (*p - '0');
        }
        *length = n;
    }
    return 0;
}

/* "METHOD SP target SP HTTP/d.d", nothing around it. civetweb skips
 * spaces before the method and then reads on past the bytes that came,
 * into what its buffer held before (another client's request); a method
 * that is not a plain token would be read one way here ("HEAD ") and
 * another there. */
static bool s_request_line_ok(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && s_is_tchar(line[i]))
        i++;
    if (i == 0 || i == len || line[i] != ' ')
        return false;
    size_t target = ++i;
    while (i < len && (unsigned char)line[i] > ' ' && line[i] != 0x7f)
        i++;
    if (i == target || i == len || line[i] != ' ')
        return false;
    const char *v = line + i + 1;
    return len - i - 1 == 8 && !memcmp(v, "HTTP/", 5) && v[5] >= '0' && v[5] <= '9' && v[6] == '.' && v[7] >= '0' &&
           v[7] <= '9';
}

/* A request's head (request: its request line and header count are
 * checked too) or an answer's. */
static int s_parse(const char *buf, size_t len, size_t max_head, bool request, framing_t *out)
{
    size_t head = framing_head_end(buf, len < max_head ? len : max_head);
    if (!head)
        return len >= max_head ? 431 : 0;
    int cl_count = 0, lines = 0;
    long long length = 0;
    bool te = false;
    const char *p = memchr(buf, '\n', head);
    const char *stop = buf + head;
    size_t first = (size_t)(p - buf);
    if (first && buf[first - 1] == '\r')
        first--;
    if (request && !s_request_line_ok(buf, first))
        return 400;
    for (p = p + 1; p < stop;) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        size_t line_len = (size_t)(nl - p);
        if (line_len && p[line_len - 1] == '\r')
            line_len--;
        if (line_len == 0)
            break; /* the blank line */
        /* civetweb reads only so many headers and takes the rest of the
         * head as if it were not there: a Content-Length among them would
         * frame the request one way here and another there. */
        if (request && ++lines > FRAMING_HEADERS_MAX)
            return 431;
        int rc = s_line(p, line_len, &cl_count, &length, &te);
        if (rc)
            return rc;
        p = nl + 1;
    }
    if (te)
        return cl_count ? 400 : 411;
    out->head_len = head;
    out->body_len = length;
    out->has_length = cl_count == 1;
    return 1;
}

int framing_parse(const char *buf, size_t len, size_t max_head, framing_t *out)
{
    return s_parse(buf, len, max_head, true, out);
}

/* ---- answers ---- */

void framing_asked(framing_answers_t *a, bool is_head)
{
    if (a->due >= FRAMING_ANSWERS_MAX) {
        a->lost = true;
        return;
    }
    if (is_head)
        a->heads |= (uint64_t)1 << a->due;
    a->due++;
}

bool framing_none_due(const framing_answers_t *a)
{
    return !a->lost && a->due == 0;
}

/* The oldest answer due has come whole. */
static void s_ended(framing_answers_t *a, int *ended)
{
    a->due--;
    a->heads >>= 1;
    ++*ended;
}

/* A "Connection" header naming "close" among its options. */
static bool s_says_close(const char *head, size_t len)
{
    const char *end = head + len;
    for (const char *p = head; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        size_t line = (size_t)(nl - p);
        if (line > 11 && !strncasecmp(p, "connection:", 11)) {
            for (const char *q = p + 11; q + 5 <= nl; q++)
                if (!strncasecmp(q, "close", 5))
                    return true;
        }
        p = nl + 1;
    }
    return false;
}

/* The head of one answer is in a->head[0..head_end): where its body ends.
 * false: the answer cannot be delimited. */
static bool s_answer_head(framing_answers_t *a, size_t head_end, int *ended)
{
    const char *h = a->head;
    if (head_end < 13 || strncmp(h, "HTTP/1.", 7) || h[8] != ' ' || h[9] < '1' || h[9] > '5' || h[10] < '0' ||
        h[10] > '9' || h[11] < '0' || h[11] > '9')
        return false;
    int status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    framing_t f;
    if (s_parse(h, head_end, sizeof a->head, false, &f) != 1 || s_says_close(h, head_end))
        return false;
    a->head_len = 0;
    if (status < 200) /* 100 Continue: the answer itself follows */
        return status != 101;
    bool is_head = (a->heads & 1) != 0;
    if (is_head || status == 204 || status == 304)
        a->body_left = 0;
    else if (!f.has_length)
        return false; /* its end would be the connection's */
    else
        a->body_left = f.body_len;
    if (a->body_left == 0)
        s_ended(a, ended);
    return true;
}

int framing_answered(framing_answers_t *a, const char *p, size_t n)
{
    int ended = 0;
    while (n && !a->lost) {
        if (a->body_left) {
            size_t take = (unsigned long long)a->body_left < n ? (size_t)a->body_left : n;
            a->body_left -= (long long)take;
            p += take;
            n -= take;
            if (!a->body_left)
                s_ended(a, &ended);
            continue;
        }
        if (!a->due) {
            a->lost = true; /* bytes no request asked for */
            break;
        }
        size_t before = a->head_len, room = sizeof a->head - a->head_len;
        size_t take = n < room ? n : room;
        memcpy(a->head + a->head_len, p, take);
        a->head_len += take;
        size_t end = framing_head_end(a->head, a->head_len);
        if (!end) {
            if (a->head_len == sizeof a->head)
                a->lost = true;
            break; /* all of it taken */
        }
        p += end - before;
        n -= end - before;
        if (!s_answer_head(a, end, &ended))
            a->lost = true;
    }
    return ended;
}
