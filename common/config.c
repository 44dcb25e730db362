#include "config.h"

#include "endpoints.h"
#include "url.h"

#include <errno.h>
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

int config_addr(const char *name, const char *def, bool allow_zero, char *out, size_t out_size, config_error_t *err)
{
    if (config_string(name, def, out, out_size, err) < 0)
        return -1;
    const char *colon = strrchr(out, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == out || !end || *end || colon[1] == '\0' || port < (allow_zero ? 0 : 1) || port > 65535) {
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

static void s_die(const config_error_t *err)
{
    fprintf(stderr, "portico: configuration error: %s\n", err->text);
    exit(2);
}

void config_string_or_die(const char *name, const char *def, char *out, size_t out_size)
{
    config_error_t err;
    if (config_string(name, def, out, out_size, &err) < 0)
        s_die(&err);
}

long config_int_or_die(const char *name, long def, long min, long max)
{
    config_error_t err;
    long v = 0;
    if (config_int(name, def, min, max, &v, &err) < 0)
        s_die(&err);
    return v;
}

bool config_bool_or_die(const char *name, bool def)
{
    config_error_t err;
    bool v = false;
    if (config_bool(name, def, &v, &err) < 0)
        s_die(&err);
    return v;
}

void config_addr_or_die(const char *name, const char *def, bool allow_zero, char *out, size_t out_size)
{
    config_error_t err;
    if (config_addr(name, def, allow_zero, out, out_size, &err) < 0)
        s_die(&err);
}

void config_endpoint_or_die(const char *name, const char *def, char *out, size_t out_size)
{
    config_error_t err;
    if (config_endpoint(name, def, out, out_size, &err) < 0)
        s_die(&err);
}

void config_endpoints_or_die(const char *name, const char *def, char *out, size_t out_size)
{
    config_error_t err;
    if (config_endpoints(name, def, out, out_size, &err) < 0)
        s_die(&err);
}

void config_url_or_die(const char *name, const char *def, char *out, size_t out_size)
{
    config_error_t err;
    if (config_url(name, def, out, out_size, &err) < 0)
        s_die(&err);
}
