#include "bb_text.h"

#include "sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool bb_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        size_t len;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) < len)
            return false;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        p += len;
    }
    return true;
}

static bool s_opaque_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr("_~+/-", c));
}

static int s_hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A "%XX" at p: a form body echoed back is percent-encoded, and its
 * escapes belong to the value they are in. */
static bool s_escape(const char *p)
{
    return p[0] == '%' && s_hex(p[1]) >= 0 && s_hex(p[2]) >= 0;
}

/* The length of the run at p: opaque characters and escapes. */
static size_t s_run(const char *p)
{
    size_t n = 0;
    for (;;) {
        if (s_opaque_char(p[n]))
            n++;
        else if (s_escape(p + n))
            n += 3;
        else
            return n;
    }
}

/* Looks like a token, a code or a secret rather than words: mixed case
 * with digits (base64, base64url), or a long run of hex (hex tokens,
 * UUIDs). Words, host names and paths ("oauth2/latest/token") are not.
 * An escape counts for the length, and for the kinds of characters by the
 * character it stands for (so "https%3A%2F%2Fportico" stays words). */
static bool s_opaque_run(const char *p, size_t n)
{
    bool upper = false, lower = false, digit = false, hex = true;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (s_escape(p + i)) {
            c = (char)(s_hex(p[i + 1]) * 16 + s_hex(p[i + 2]));
            i += 2;
            hex = false;
        }
        upper |= c >= 'A' && c <= 'Z';
        lower |= c >= 'a' && c <= 'z';
        digit |= c >= '0' && c <= '9';
        hex &= (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-';
    }
    return n >= 16 && digit && ((upper && lower) || (hex && n >= 32));
}

/* A name that says its value is a secret (client_secret, refresh_token,
 * code, code_verifier, oauth_verifier, password). */
static bool s_secret_name(const char *p, size_t n)
{
    static const char *const words[] = {"secret", "token", "code", "verifier", "password"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t k = strlen(words[w]);
        for (size_t i = 0; i + k <= n; i++)
            if (!strncasecmp(p + i, words[w], k))
                return true;
    }
    return false;
}

/* The length of the value at p of a name=value pair: a run with any '='
 * of base64 padding, or what a pair of double quotes holds. */
static size_t s_value(const char *p)
{
    if (*p == '"') {
        const char *end = strchr(p + 1, '"');
        return end ? (size_t)(end + 1 - p) : strlen(p);
    }
    size_t n = 0;
    for (size_t k; (k = s_run(p + n)) > 0 || p[n] == '=';)
        n += k ? k : 1;
    return n;
}

char *bb_redact_opaque(const char *text)
{
    static const char mark[] = "[redacted]";
    sbuf_t o;
    sbuf_init(&o);
    for (size_t i = 0; text[i];) {
        size_t n = s_run(text + i);
        if (!n) {
            sbuf_append(&o, text + i, 1);
            i++;
        } else if (s_opaque_run(text + i, n)) {
            sbuf_append(&o, mark, sizeof mark - 1);
            i += n;
        } else if (text[i + n] == '=' && s_secret_name(text + i, n)) {
            sbuf_append(&o, text + i, n + 1);
            i += n + 1;
            size_t v = s_value(text + i);
            if (v)
                sbuf_append(&o, mark, sizeof mark - 1);
            i += v;
        } else {
            sbuf_append(&o, text + i, n);
            i += n;
        }
    }
    return sbuf_take(&o); /* NULL when out of memory; what it held is wiped */
}

/* Control characters to spaces, runs of spaces collapsed, cut at a UTF-8
 * boundary to fit out_size. */
static void s_clean(const char *in, size_t n, char *out, size_t out_size)
{
    if (!out_size)
        return;
    size_t o = 0;
    bool space = true; /* drops leading spaces */
    for (size_t i = 0; i < n && in[i] && o + 1 < out_size; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7f || c == ' ') {
            if (!space)
                out[o++] = ' ';
            space = true;
            continue;
        }
        out[o++] = (char)c;
        space = false;
    }
    /* Cut at a character boundary, not inside a UTF-8 sequence. */
    if (o > 0 && o + 1 >= out_size) {
        size_t k = o;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0x80)) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t need = (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 : (lead & 0xf8) == 0xf0 ? 4 : 1;
            if (o - (k - 1) < need)
                o = k - 1;
        }
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    if (!bb_utf8_valid(out, o))
        snprintf(out, out_size, "(unreadable text)");
}

void bb_safe_text(const char *in, size_t n, char *out, size_t out_size)
{
    if (!out_size)
        return;
    /* Redacted whole, then cut: a token across the cut would otherwise
     * keep its first characters, too few to look like one. */
    size_t size = n + sizeof "(unreadable text)";
    char *whole = malloc(size);
    char *redacted = NULL;
    if (whole) {
        s_clean(in, n, whole, size);
        redacted = bb_redact_opaque(whole);
        explicit_bzero(whole, size);
        free(whole);
    }
    if (!redacted) {
        snprintf(out, out_size, "(text not shown)");
        return;
    }
    s_clean(redacted, strlen(redacted), out, out_size);
    explicit_bzero(redacted, strlen(redacted));
    free(redacted);
}

char *bb_text_dup(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}
