#include "cookie.h"

#include <stdbool.h>
#include <string.h>

static bool s_space(char c)
{
    return c == ' ' || c == '\t';
}

int cookie_get(const char *const *lines, size_t n, const char *name, char *out, size_t out_size)
{
    if (out_size)
        out[0] = '\0';
    size_t name_len = strlen(name);
    const char *value = NULL;
    size_t value_len = 0;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        for (const char *p = lines[i]; p && *p;) {
            while (s_space(*p) || *p == ';')
                p++;
            const char *end = p + strcspn(p, ";");
            const char *eq = memchr(p, '=', (size_t)(end - p));
            if (eq && (size_t)(eq - p) == name_len && !memcmp(p, name, name_len)) {
                const char *v = eq + 1, *e = end;
                while (v < e && s_space(*v))
                    v++;
                while (e > v && s_space(e[-1]))
                    e--;
                value = v;
                value_len = (size_t)(e - v);
                found++;
            }
            p = end;
        }
    }
    if (found != 1)
        return COOKIE_ABSENT;
    if (value_len >= out_size)
        return COOKIE_TOO_LONG;
    memcpy(out, value, value_len);
    out[value_len] = '\0';
    return (int)value_len;
}
