/* A logrus-compatible logger: the same levels, the same text and JSON line formats, the same
 * configurable field names and timestamp layout, so that log queries written for the Go
 * extension keep working.
 *
 * Lines go to stderr with one write(2) each. Never pass a secret (token, password, header value,
 * client Authorization) as a field: nothing here can tell a secret from any other string. */
#ifndef PLE_LOG_H
#define PLE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_TRACE,
};

enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* Strings are borrowed, not copied: they must outlive the logger (they live in struct config). */
struct log_options {
    enum log_level level;
    enum log_format format;
    const char *timestamp_layout; /* Go layout; NULL means GO_RFC3339 */
    bool timestamp_disable;
    bool timestamp_utc;             /* true: UTC (what Lambda uses); false: local time */
    const char *field_time;         /* "time" */
    const char *field_level;        /* "level" */
    const char *field_msg;          /* "msg" */
    const char *field_logrus_error; /* "logrus_error" */
    const char *field_func;         /* "func" */
    const char *field_file;         /* "file" */
};

enum log_kv_kind { LOG_KV_END = 0, LOG_KV_STR, LOG_KV_INT };

struct log_kv {
    const char *key;
    const char *str;
    long long num;
    enum log_kv_kind kind;
};

/* Defaults: info, text, RFC3339, timestamps on, UTC, logrus field names. */
void log_options_default(struct log_options *o);
void log_configure(const struct log_options *o);
bool log_enabled(enum log_level level);
const char *log_level_name(enum log_level level); /* "error" "warning" "info" "debug" "trace" */
/* Accepts logrus names: panic fatal error warn warning info debug trace (any case). */
bool log_level_parse(const char *s, enum log_level *out);

/* Formats one line (with the trailing '\n') into buf. Pure: the timestamp is given. kvs ends
 * with an entry of kind LOG_KV_END. Returns the length, truncated to cap - 1 (a truncated line
 * still ends in '\n'). */
size_t log_format_line(char *buf, size_t cap, const struct log_options *o, enum log_level level,
                       const char *func, const char *file, int line, const char *msg,
                       const struct log_kv *kvs, const struct timespec *now);

/* Formats with the configured options and the current time and writes to stderr (or the sink). */
void log_emit(enum log_level level, const char *func, const char *file, int line, const char *msg,
              const struct log_kv *kvs);

/* Tests capture lines here instead of stderr. NULL restores stderr. */
void log_set_sink(void (*sink)(const char *line, size_t len, void *ud), void *ud);

/* Fields: LKS("url", url) LKI("status", 503) -- no commas between them. */
#define LKS(k, v) {(k), (v), 0, LOG_KV_STR},
#define LKI(k, v) {(k), NULL, (long long)(v), LOG_KV_INT},

#define LOG_AT(lvl, msg, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_emit((lvl), __func__, __FILE__, __LINE__, (msg),                                   \
                     (const struct log_kv[]){__VA_ARGS__{NULL, NULL, 0, LOG_KV_END}});             \
    } while (0)

#define log_error(msg, ...) LOG_AT(LOG_LEVEL_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...) LOG_AT(LOG_LEVEL_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...) LOG_AT(LOG_LEVEL_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...) LOG_AT(LOG_LEVEL_DEBUG, msg, __VA_ARGS__)
#define log_trace(msg, ...) LOG_AT(LOG_LEVEL_TRACE, msg, __VA_ARGS__)

#endif
