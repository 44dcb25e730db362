/* log: one logfmt line per event on stderr.
 *
 *   ts=2026-11-29T15:00:00.123Z level=info service=web req=3f2a msg="login started" integration=4
 *
 * The service name is set once at start, the request id per thread while a
 * request is handled. Control characters in a line are replaced, so input
 * from outside cannot forge a second line. Never pass a secret to these. */
#ifndef PORTICO_LOG_H
#define PORTICO_LOG_H

#include <stdarg.h>
#include <stdio.h>

typedef enum { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR } log_level_t;

/* Set the service name and the level. 0, or -1 when level_name is unknown. */
int log_init(const char *service, const char *level_name);
void log_set_level(log_level_t level);
/* Redirect output (tests); NULL restores stderr. */
void log_set_stream(FILE *stream);
/* The request id printed on this thread's lines; NULL or "" clears it. */
void log_set_request_id(const char *request_id);
const char *log_request_id(void);

/* msg is a short lower-case sentence; kv_fmt produces "key=value key=value"
 * and may be NULL. */
void log_write(log_level_t level, const char *msg, const char *kv_fmt, ...) __attribute__((format(printf, 3, 4)));
void log_vwrite(log_level_t level, const char *msg, const char *kv_fmt, va_list ap);

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

/* Quote a value for a kv pair: "a b" -> "\"a b\"". Returns out. */
const char *log_quote(const char *value, char *out, size_t out_size);

#endif
