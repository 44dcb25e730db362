#include "bb_header.h"

#include "bb_form.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void s_problem_word(const char *in, size_t n, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < out_size; i++)
        if (isalnum((unsigned char)in[i]) || in[i] == '_')
            out[o++] = in[i];
    out[o] = '\0';
}

/* Find oauth_problem among the auth-params of a WWW-Authenticate: OAuth
 * challenge: name=token or name="quoted", comma separated. */
static int s_problem_from_header(const char *h, char *out, size_t out_size)
{
    const char *p = h;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "OAuth", 5) != 0)
        return -1;
    p += 5;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ',' && *p != ' ')
            p++;
        size_t name_len = (size_t)(p - name);
        while (*p == ' ')
            p++;
        if (*p != '=') {
            if (!*p)
                break;
            continue;
        }
        p++;
        while (*p == ' ')
            p++;
        const char *val;
        size_t val_len;
        if (*p == '"') {
            val = ++p;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            val_len = (size_t)(p - val);
            if (*p == '"')
                p++;
        } else {
            val = p;
            while (*p && *p != ',' && *p != ' ')
                p++;
            val_len = (size_t)(p - val);
        }
        if (name_len == 13 && !strncasecmp(name, "oauth_problem", 13)) {
            s_problem_word(val, val_len, out, out_size);
            return out[0] ? 0 : -1;
        }
    }
    return -1;
}

int bb_oauth_problem(const char *www_authenticate, const char *body, size_t body_len, char *out, size_t out_size)
{
    if (!out_size)
        return -1;
    out[0] = '\0';
    if (www_authenticate && s_problem_from_header(www_authenticate, out, out_size) == 0)
        return 0;
    char *v = bb_form_get(body, body_len, "oauth_problem");
    if (v) {
        s_problem_word(v, strlen(v), out, out_size);
        free(v);
        if (out[0])
            return 0;
    }
    return -1;
}

int bb_retry_after_seconds(const char *value, time_t now)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (!*value)
        return -1;
    long long s;
    if (isdigit((unsigned char)*value)) {
        char *end;
        errno = 0;
        s = strtoll(value, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end || errno)
            return -1;
    } else {
        time_t t = curl_getdate(value, NULL);
        if (t == (time_t)-1)
            return -1;
        s = (long long)t - (long long)now;
        if (s < 0)
            s = 0;
    }
    return s > 86400 ? 86400 : (int)s;
}
