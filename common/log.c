#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char s_service[32] = "portico";
static log_level_t s_level = LOG_LEVEL_INFO;
static FILE *s_stream;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local char s_request_id[64];

static const char *const s_level_names[] = {"debug", "info", "warn", "error"};

int log_init(const char *service, const char *level_name)
{
    snprintf(s_service, sizeof s_service, "%s", service ? service : "portico");
    if (!level_name || !*level_name)
        return 0;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(level_name, s_level_names[i]) == 0) {
            s_level = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void log_set_level(log_level_t level)
{
    s_level = level;
}

void log_set_stream(FILE *stream)
{
    s_stream = stream;
}

void log_set_request_id(const char *request_id)
{
    snprintf(s_request_id, sizeof s_request_id, "%s", request_id ? request_id : "");
}

const char *log_request_id(void)
{
    return s_request_id;
}

const char *log_quote(const char *value, char *out, size_t out_size)
{
    size_t o = 0;
    if (out_size < 3) {
        if (out_size)
            out[0] = '\0';
        return out;
    }
    out[o++] = '"';
    for (const char *p = value ? value : ""; *p && o + 3 < out_size; p++) {
        if (*p == '"' || *p == '\\')
            out[o++] = '\\';
        out[o++] = *p;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* Replace control characters so one event is one line. */
static void s_sanitise(char *line)
{
    for (unsigned char *p = (unsigned char *)line; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

void log_vwrite(log_level_t level, const char *msg, const char *kv_fmt, va_list ap)
{
    if (level < s_level)
        return;
    char kv[1536] = "";
    if (kv_fmt)
        vsnprintf(kv, sizeof kv, kv_fmt, ap);
    char qmsg[512];
    log_quote(msg, qmsg, sizeof qmsg);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    char line[2304 + 1]; /* and the newline */
    int n = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s service=%s", when, ts.tv_nsec / 1000000L,
                     s_level_names[level], s_service);
    if (s_request_id[0] && n > 0 && (size_t)n < sizeof line - 1)
        n += snprintf(line + n, sizeof line - 1 - (size_t)n, " req=%s", s_request_id);
    if (n > 0 && (size_t)n < sizeof line - 1)
        snprintf(line + n, sizeof line - 1 - (size_t)n, " msg=%s%s%s", qmsg, kv[0] ? " " : "", kv);
    s_sanitise(line);

    FILE *stream = s_stream;
    if (stream) {
        pthread_mutex_lock(&s_lock);
        fputs(line, stream);
        fputc('\n', stream);
        fflush(stream);
        pthread_mutex_unlock(&s_lock);
        return;
    }
    /* stderr: one write(2) per line, no lock. A line is shorter than
     * PIPE_BUF, so lines from several threads never interleave on a pipe. */
    size_t len = strlen(line);
    line[len++] = '\n';
    for (size_t off = 0; off < len;) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void log_write(log_level_t level, const char *msg, const char *kv_fmt, ...)
{
    va_list ap;
    va_start(ap, kv_fmt);
    log_vwrite(level, msg, kv_fmt, ap);
    va_end(ap);
}
