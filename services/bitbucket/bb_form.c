#include "bb_form.h"

#include "bb_text.h"
#include "url.h"

#include <stdlib.h>
#include <string.h>

char *bb_form_get(const char *body, size_t body_len, const char *name)
{
    if (!body)
        return NULL;
    size_t name_len = strlen(name);
    const char *p = body, *end = body + body_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *name_end = eq ? eq : pair_end;
        /* Names we look for never need decoding; compare raw. */
        if ((size_t)(name_end - p) == name_len && !memcmp(p, name, name_len)) {
            size_t raw_len = eq ? (size_t)(pair_end - eq - 1) : 0;
            char *raw = bb_text_dup(eq ? eq + 1 : "", raw_len);
            char *val = raw ? malloc(raw_len + 1) : NULL;
            if (!raw || !val || memchr(raw, '\0', raw_len) || url_decode(raw, true, val, raw_len + 1) < 0 ||
                !bb_utf8_valid(val, strlen(val))) {
                if (raw)
                    explicit_bzero(raw, raw_len);
                free(raw);
                free(val);
                return NULL;
            }
            explicit_bzero(raw, raw_len);
            free(raw);
            return val;
        }
        p = amp ? amp + 1 : end;
    }
    return NULL;
}
