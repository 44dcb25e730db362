#include "framing.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Digits only, and few enough that the value cannot overflow. */
#define LENGTH_DIGITS_MAX 15

size_t framing_head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static bool s_is_name(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && !strncasecmp(name, want, len);
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
    if (memchr(line, ' ', name_len) || memchr(line, '\t', name_len))
        return 400; /* "Content-Length : 5" is read differently by different servers */
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

int framing_parse(const char *buf, size_t len, size_t max_head, framing_t *out)
{
    size_t head = framing_head_end(buf, len < max_head ? len : max_head);
    if (!head)
        return len >= max_head ? 431 : 0;
    int cl_count = 0;
    long long length = 0;
    bool te = false;
    /* The request line first: civetweb judges it. */
    const char *p = memchr(buf, '\n', head);
    const char *stop = buf + head;
    for (p = p ? p + 1 : stop; p < stop;) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        size_t line_len = (size_t)(nl - p);
        if (line_len && p[line_len - 1] == '\r')
            line_len--;
        if (line_len == 0)
            break; /* the blank line */
        int rc = s_line(p, line_len, &cl_count, &length, &te);
        if (rc)
            return rc;
        p = nl + 1;
    }
    if (te)
        return cl_count ? 400 : 411;
    out->head_len = head;
    out->body_len = length;
    return 1;
}
