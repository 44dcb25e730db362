#include "config.h"

#include "endpoints.h"
#include "netaddr.h"
#include "url.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *s_get(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int config_string(const char *name, const char *def, char *out, size_t out_size, config_error_t *err)
{
    const char *v = s_get(name);
    if (!v)
        v = def ? def : "";
    if (strlen(v) >= out_size) {
        snprintf(err->text, sizeof err->text, "%s: the value is longer than %zu characters", name, out_size - 1);
        return -1;
    }
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

int config_int(const char *name, long def, long min, long max, long *out, config_error_t *err)
{
    const char *v = s_get(name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        snprintf(err->text, sizeof err->text, "%s: must be a whole number from %ld to %ld (got \"%.40s\")", name, min,
                 max, v);
        return -1;
    }
    *out = n;
    return 0;
}

int config_bool(const char *name, bool def, bool *out, config_error_t *err)
{
    const char *v = s_get(name);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
        *out = false;
        return 0;
    }
    snprintf(err->text, sizeof err->text, "%s: must be true or false (got \"%.40s\")", name, v);
    return -1;
}

/* A host as a listener takes it: a name or IPv4 address, an IPv6 address
 * in brackets, or an IPv4 range ("10.231.0.0/24": this machine's address
 * in it, netaddr_own_address). Nothing else: civetweb reads
 * "a:1,0.0.0.0:2" as two listeners, and such a value would open a second
 * one unnoticed. */
static bool s_host_ok(const char *h, size_t n)
{
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        for (size_t i = 1; i + 1 < n; i++)
            if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
                return false;
        return n > 2;
    }
    const char *slash = memchr(h, '/', n);
    if (slash) {
        char text[64];
        netaddr_net_t net;
        if (n >= sizeof text)
            return false;
        memcpy(text, h, n);
        text[n] = '\0';
        return !strchr(slash + 1, '/') && netaddr_parse_net(text, &net) == 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
            return false;
    return n > 0;
}

/* Digits only, without a sign, blanks or a leading zero: equal ports are
 * then equal text. */
static long s_port(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 5 || (p[0] == '0' && n > 1))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i]))
            return -1;
    return strtol(p, NULL, 10);
}

int config_addr(const char *name, const char *def, bool allow_zero, char *out, size_t out_size, config_error_t *err)
{
    if (config_string(name, def, out, out_size, err) < 0)
        return -1;
    const char *colon = strrchr(out, ':');
    long port = colon ? s_port(colon + 1) : -1;
    if (!colon || !s_host_ok(out, (size_t)(colon - out)) || port < (allow_zero ? 0 : 1) || port > 65535) {
        snprintf(err->text, sizeof err->text, "%s: must be host:port, for example 127.0.0.1:8080 (got \"%.40s\")", name,
                 out);
        return -1;
    }
    return 0;
}

int config_endpoint(const char *name, const char *def, char *out, size_t out_size, config_error_t *err)
{
    if (config_string(name, def, out, out_size, err) < 0)
        return -1;
    if (strncmp(out, "tcp://", 6) && strncmp(out, "ipc://", 6) && strncmp(out, "inproc://", 9)) {
        snprintf(err->text, sizeof err->text,
                 "%s: must be a ZeroMQ endpoint such as tcp://127.0.0.1:5551 (got \"%.40s\")", name, out);
        return -1;
    }
    const char *rest = strstr(out, "://") + 3;
    if (!*rest) {
        snprintf(err->text, sizeof err->text, "%s: \"%.40s\" has no address after \"://\"", name, out);
        return -1;
    }
    if (!strncmp(out, "tcp://", 6)) {
        /* A host (a name, an address, an interface or *) and a port (or *
         * for any): what ZeroMQ would refuse only when it binds. */
        const char *colon = strrchr(rest, ':');
        const char *port = colon ? colon + 1 : "";
        bool port_ok = !strcmp(port, "*") || (port[0] && strspn(port, "0123456789") == strlen(port) &&
                                              strlen(port) <= 5 && atol(port) <= 65535);
        if (!colon || colon == rest || !port_ok) {
            snprintf(err->text, sizeof err->text,
                     "%s: needs a host and a port, such as tcp://127.0.0.1:5551 (got \"%.40s\")", name, out);
            return -1;
        }
    }
    return 0;
}

int config_endpoints(const char *name, const char *def, char *out, size_t out_size, config_error_t *err)
{
    char why[200];
    if (config_string(name, def, out, out_size, err) < 0)
        return -1;
    if (endpoints_check(out, why, sizeof why) < 0) {
        snprintf(err->text, sizeof err->text, "%s: %s", name, why);
        return -1;
    }
    return 0;
}

int config_url(const char *name, const char *def, char *out, size_t out_size, config_error_t *err)
{
    char raw[2048], why[160];
    if (config_string(name, def, raw, sizeof raw, err) < 0)
        return -1;
    if (url_normalize_base(raw, out, out_size, why, sizeof why) < 0) {
        snprintf(err->text, sizeof err->text, "%s: %s (got \"%.60s\")", name, why, raw);
        return -1;
    }
    return 0;
}

void config_die(const config_error_t *err)
{
    fprintf(stderr, "portico: configuration error: %s\n", err->text);
    exit(2);
}

int config_fail(config_error_t *err, const char *name, const char *fmt, ...)
{
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(err->text, sizeof err->text, "%s: %s", name, why);
    return -1;
}

static int s_load_one(const config_var_t *v, char *base, config_error_t *err)
{
    void *field = base + v->offset;
    switch (v->kind) {
    case CONFIG_STRING:
        return config_string(v->name, v->def, field, v->size, err);
    case CONFIG_ADDR:
    case CONFIG_ADDR_OR_ZERO:
        return config_addr(v->name, v->def, v->kind == CONFIG_ADDR_OR_ZERO, field, v->size, err);
    case CONFIG_ENDPOINT:
        return config_endpoint(v->name, v->def, field, v->size, err);
    case CONFIG_ENDPOINTS:
        return config_endpoints(v->name, v->def, field, v->size, err);
    case CONFIG_URL:
        return config_url(v->name, v->def, field, v->size, err);
    case CONFIG_BOOL: {
        bool b = false;
        if (config_bool(v->name, v->idef != 0, &b, err) < 0)
            return -1;
        assert(v->size == sizeof(bool));
        *(bool *)field = b;
        return 0;
    }
    case CONFIG_INT: {
        long n = 0;
        if (config_int(v->name, v->idef, v->min, v->max, &n, err) < 0)
            return -1;
        n *= v->scale;
        if (v->size == sizeof(int)) {
            assert(n >= INT_MIN && n <= INT_MAX);
            *(int *)field = (int)n;
        } else {
            assert(v->size == sizeof(long));
            *(long *)field = n;
        }
        return 0;
    }
    }
    assert(!"unknown configuration kind");
    return -1;
}

int config_load(const config_var_t *vars, void *base, config_error_t *err)
{
    for (const config_var_t *v = vars; v->name; v++)
        if (s_load_one(v, base, err) < 0)
            return -1;
    return 0;
}

const config_var_t *config_find(const config_var_t *vars, const char *name)
{
    for (const config_var_t *v = vars; v->name; v++)
        if (!strcmp(v->name, name))
            return v;
    return NULL;
}

void config_string_or_die(const char *name, const char *def, char *out, size_t out_size)
{
    config_error_t err;
    if (config_string(name, def, out, out_size, &err) < 0)
        config_die(&err);
}

long config_int_or_die(const char *name, long def, long min, long max)
{
    config_error_t err;
    long v = 0;
    if (config_int(name, def, min, max, &v, &err) < 0)
        config_die(&err);
    return v;
}

bool config_bool_or_die(const char *name, bool def)
{
    config_error_t err;
    bool v = false;
    if (config_bool(name, def, &v, &err) < 0)
        config_die(&err);
    return v;
}

void config_addr_or_die(const char *name, const char *def, bool allow_zero, char *out, size_t out_size)
{
    config_error_t err;
    if (config_addr(name, def, allow_zero, out, out_size, &err) < 0)
        config_die(&err);
}

void config_endpoint_or_die(const char *name, const char *def, char *out, size_t out_size)
{
    config_error_t err;
    if (config_endpoint(name, def, out, out_size, &err) < 0)
        config_die(&err);
}

void config_url_or_die(const char *name, const char *def, char *out, size_t out_size)
{
    config_error_t err;
    if (config_url(name, def, out, out_size, &err) < 0)
        config_die(&err);
}
