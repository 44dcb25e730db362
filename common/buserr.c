#include "buserr.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void bus_error_set(bus_error_t *err, int code, int detail, const char *fmt, ...)
{
    if (!err)
        return;
    err->code = code;
    err->detail = detail;
    err->retry_after_s = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

const char *bus_code_name(int code)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&portico__error_code__descriptor, code);
    return v ? v->name : "UNKNOWN";
}

/* The lower-case names, made once from the descriptor. */
#define NAME_MAX_LEN 48
static pthread_once_t s_names_once = PTHREAD_ONCE_INIT;
static char s_names[512][NAME_MAX_LEN];

static void s_make_names(void)
{
    const ProtobufCEnumDescriptor *d = &portico__error_detail__descriptor;
    for (unsigned i = 0; i < d->n_values && i < sizeof s_names / sizeof s_names[0]; i++) {
        const char *n = d->values[i].name;
        if (!strncmp(n, "DETAIL_", 7))
            n += 7;
        char *out = s_names[i];
        size_t k = 0;
        for (; n[k] && k + 1 < NAME_MAX_LEN; k++)
            out[k] = (char)tolower((unsigned char)n[k]);
        out[k] = '\0';
    }
}

/* The index of detail in the descriptor's values, -1 when it is none. */
static int s_index(int detail)
{
    const ProtobufCEnumDescriptor *d = &portico__error_detail__descriptor;
    for (unsigned i = 0; i < d->n_values; i++)
        if (d->values[i].value == detail)
            return (int)i;
    return -1;
}

const char *bus_detail_name(int detail)
{
    if (detail == DETAIL(NONE))
        return "";
    int i = s_index(detail);
    if (i < 0)
        return "unknown";
    pthread_once(&s_names_once, s_make_names);
    return s_names[i];
}

int bus_detail_known(int detail)
{
    return s_index(detail) >= 0;
}

int bus_detail_parse(const char *name, int fallback)
{
    if (!name || !*name)
        return fallback;
    pthread_once(&s_names_once, s_make_names);
    const ProtobufCEnumDescriptor *d = &portico__error_detail__descriptor;
    for (unsigned i = 0; i < d->n_values; i++)
        if (d->values[i].value != DETAIL(NONE) && !strcmp(s_names[i], name))
            return d->values[i].value;
    return fallback;
}

void bus_error_from_peer(bus_error_t *err)
{
    if (!protobuf_c_enum_descriptor_get_value(&portico__error_code__descriptor, err->code))
        err->code = PORTICO__ERROR_CODE__INTERNAL;
    if (!bus_detail_known(err->detail))
        err->detail = DETAIL(NONE);
}
