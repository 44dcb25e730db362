#include "access_rules.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool s_key_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
}

static bool s_part_valid(const char *s, size_t n, size_t max, bool tilde)
{
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s_key_char((unsigned char)s[i]) && !(tilde && i == 0 && s[i] == '~' && n > 1))
            return false;
    return true;
}

bool access_resource_valid(const char *resource)
{
    if (!resource || !*resource)
        return true;
    const char *slash = strchr(resource, '/');
    if (!slash)
        return s_part_valid(resource, strlen(resource), ACCESS_MAX_KEY, true);
    return s_part_valid(resource, (size_t)(slash - resource), ACCESS_MAX_KEY, true) &&
           s_part_valid(slash + 1, strlen(slash + 1), ACCESS_MAX_SLUG, false);
}

int access_resource_split(const char *resource, char *key, size_t key_size, char *slug, size_t slug_size)
{
    if (!resource || !*resource || !access_resource_valid(resource))
        return -1;
    const char *slash = strchr(resource, '/');
    size_t kn = slash ? (size_t)(slash - resource) : strlen(resource);
    const char *s = slash ? slash + 1 : "";
    if (kn >= key_size || strlen(s) >= slug_size)
        return -1;
    memcpy(key, resource, kn);
    key[kn] = '\0';
    snprintf(slug, slug_size, "%s", s);
    return 0;
}

bool access_pattern_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > ACCESS_MAX_PATTERN)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c == 0x7f || c == ',')
            return false;
        if (c == '*' && i != 0)
            return false;
    }
    if (p[0] != '*')
        return true;
    /* "*@domain": a domain without another '@' or '*'. */
    return n > 2 && p[1] == '@' && !strchr(p + 2, '@') && p[2] != '.';
}

static bool s_ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return m <= n && !strcasecmp(s + n - m, suffix);
}

bool access_patterns_match(char *const *patterns, size_t n, const char *username, const char *email)
{
    const char *name = username ? username : "";
    const char *mail = email ? email : "";
    for (size_t i = 0; i < n; i++) {
        const char *p = patterns[i];
        if (!p || !*p)
            continue;
        if (p[0] == '*') {
            /* "*@domain" matches addresses in that domain only, not sub-domains. */
            if ((mail[0] && s_ends_with_ci(mail, p + 1) && strlen(mail) > strlen(p + 1)) ||
                (strchr(name, '@') && s_ends_with_ci(name, p + 1) && strlen(name) > strlen(p + 1)))
                return true;
        } else if ((name[0] && !strcasecmp(name, p)) || (mail[0] && !strcasecmp(mail, p))) {
            return true;
        }
    }
    return false;
}
