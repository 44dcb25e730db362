/* libFuzzer target: what the web reads from a browser before any handler
 * trusts it: form bodies and query strings (civetweb's decoder, as the web's
 * web_form/web_query call it), cookie headers, return_to paths and base URLs
 * typed into the Add Integration form; and where the gate's framing says a
 * request ends.
 * fuzz-sources: services/web/cookie.c
 */
#include "url.h"
#include "framing.h"
#include "web/cookie.h"

#include <civetweb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    static const char *const names[] = {"csrf", "base_url", "client_secret", "return_to", "state", "code"};
    char out[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int n = mg_get_var2(s, size, names[i], out, sizeof out, 0);
        if (n >= (int)sizeof out)
            abort();
        char cookie[128];
        const char *lines[] = {s, s + size / 2};
        int c = cookie_get(lines, 2, names[i], cookie, sizeof cookie);
        if (c >= (int)sizeof cookie || (c >= 0 && strlen(cookie) != (size_t)c) || (c < 0 && cookie[0]))
            abort();
    }
    char norm[2048], why[200];
    if (url_normalize_base(s, norm, sizeof norm, why, sizeof why) == 0) {
        /* A normalised URL is stable and never keeps what we refuse. */
        char again[2048];
        if (url_normalize_base(norm, again, sizeof again, why, sizeof why) != 0 || strcmp(norm, again) != 0)
            abort();
        const char *authority = strstr(norm, "://") + 3;
        const char *path = strchr(authority, '/');
        size_t alen = path ? (size_t)(path - authority) : strlen(authority);
        if (strchr(norm, '?') || strchr(norm, '#') || memchr(authority, '@', alen) || strstr(authority, "//"))
            abort();
        for (const unsigned char *p = (const unsigned char *)norm; *p; p++)
            if (*p <= 0x20 || *p >= 0x7f)
                abort();
    }
    if (url_is_local_path(s) && (s[1] == '/' || s[1] == '\\' || strchr(s, '\\') || strchr(s, '\r')))
        abort();
    /* A request found whole lies within what was given and the limit. */
    framing_t f;
    int fr = framing_parse(s, size, 4096, &f);
    if (fr == 1 && (f.head_len > size || f.head_len > 4096 || f.body_len < 0))
        abort();
    if (fr != 0 && fr != 1 && fr != 400 && fr != 411 && fr != 431)
        abort();
    /* civetweb's answers, followed in two pieces: never more answers end
     * than were asked for, and none is due once lost. */
    static framing_answers_t a;
    memset(&a, 0, sizeof a);
    int asked = size ? (unsigned char)s[0] % 4 : 0;
    for (int i = 0; i < asked; i++)
        framing_asked(&a, i == 1);
    int ended = framing_answered(&a, s, size / 2);
    ended += framing_answered(&a, s + size / 2, size - size / 2);
    if (ended > asked || a.due != asked - ended || a.due < 0 || (a.lost && framing_none_due(&a)))
        abort();
    char dec[4096];
    int d = url_decode(s, true, dec, sizeof dec);
    if (d >= 0 && (size_t)d != strlen(dec))
        abort(); /* an encoded NUL must never get through */
    free(s);
    return 0;
}
