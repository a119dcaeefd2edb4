/* Environment -> struct config. Pure: the environment is read through a lookup function, so the
 * unit tests can feed any set of variables.
 *
 * The seed's 21 variables keep their Go defaults and meanings. An invalid value never stops the
 * extension: it becomes a config_issue (logged by main once the logger is configured) and the
 * default applies, except where the default would send profiles or credentials somewhere the
 * user did not name: an unusable remote, token or tenant refuses the relay (refusal below), an
 * unusable archive bucket or endpoint turns the archive off. Only an unset variable means its
 * default there; set but empty is unusable. */
#ifndef PLE_CONFIG_H
#define PLE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CONFIG_DEFAULT_REMOTE "https://ingest.pyroscope.cloud"
#define CONFIG_MAX_ISSUES 24

/* AWS_LAMBDA_INITIALIZATION_TYPE: Lambda's execution model (README "Lambda execution models"). */
enum lambda_init_type {
    INIT_ON_DEMAND, /* also when unset, and for a value we do not know */
    INIT_PROVISIONED_CONCURRENCY,
    INIT_SNAP_START,
    INIT_MANAGED_INSTANCES, /* no INVOKE events, concurrent invokes, never frozen */
};

/* PYROSCOPE_FLUSH_STRATEGY: when flush-on-invoke flushes the uploads of an invoke. */
enum flush_strategy {
    FLUSH_AUTO,        /* END when invokes are sparse, NEXT_INVOKE when they come often */
    FLUSH_END,         /* after the runtime's platform.runtimeDone, before the freeze */
    FLUSH_NEXT_INVOKE, /* when the next event arrives (the Go extension's behaviour) */
};
/* "auto", "end" or "next-invoke": PYROSCOPE_FLUSH_STRATEGY's values. */
const char *flush_strategy_name(enum flush_strategy s);

struct config_header {
    char *name;  /* validated HTTP token */
    char *value; /* secret: never logged */
};

/* A problem with one variable. Never holds a secret: for secret variables value is "". */
struct config_issue {
    enum log_level level; /* LOG_LEVEL_WARN for a fallback to the default, ERROR otherwise */
    const char *variable;
    char value[96];         /* the offending value, truncated, or "" */
    char default_value[48]; /* what applies instead, or "" */
    char detail[160];       /* what is wrong, in words */
};

struct config {
    /* The seed's table. */
    char *remote_address; /* PYROSCOPE_REMOTE_ADDRESS, no trailing '/'; "" when refused */
    char *auth_token;     /* PYROSCOPE_AUTH_TOKEN, "" when unset (secret) */
    bool self_profiling;  /* PYROSCOPE_SELF_PROFILING */
    int64_t timeout_ns;   /* PYROSCOPE_TIMEOUT, > 0 */
    int num_workers;      /* PYROSCOPE_NUM_WORKERS, >= 1 */
    bool flush_on_invoke; /* PYROSCOPE_FLUSH_ON_INVOKE */
    enum flush_strategy flush_strategy; /* PYROSCOPE_FLUSH_STRATEGY, default auto */
    struct config_header *http_headers; /* PYROSCOPE_HTTP_HEADERS, parsed */
    size_t n_http_headers;
    char *tenant_id;           /* PYROSCOPE_TENANT_ID, "" when unset */
    char *basic_auth_user;     /* PYROSCOPE_BASIC_AUTH_USER, "" when unset */
    char *basic_auth_password; /* PYROSCOPE_BASIC_AUTH_PASSWORD, "" when unset (secret) */
    /* PYROSCOPE_LOG_LEVEL, _LOG_FORMAT, _LOG_TIMESTAMP_FORMAT, _LOG_TIMESTAMP_DISABLE and the six
     * _FIELD_NAME variables; the strings point into this struct's own copies. */
    struct log_options log;

    /* Ours (see the README's second table). */
    bool dev_mode;             /* PYROSCOPE_DEV_MODE */
    uint16_t relay_port;       /* PYROSCOPE_RELAY_PORT, default 4040 */
    size_t queue_max_count;    /* PYROSCOPE_QUEUE_MAX_COUNT, default 256 */
    size_t queue_max_bytes;    /* PYROSCOPE_QUEUE_MAX_BYTES, default 32 MiB */
    size_t max_body_bytes;     /* PYROSCOPE_MAX_BODY_BYTES, default 8 MiB */
    int max_retries;           /* PYROSCOPE_MAX_RETRIES, default 3 */
    size_t max_header_bytes;   /* PYROSCOPE_MAX_HEADER_BYTES, default 64 KiB */
    size_t max_connections;    /* PYROSCOPE_MAX_CONNECTIONS, default 128 */
    int64_t client_timeout_ns; /* PYROSCOPE_CLIENT_TIMEOUT, default 10s */
    /* PYROSCOPE_SELF_PROFILING_INTERVAL, default 10s: how often the self-profile is uploaded */
    int64_t self_profiling_interval_ns;
    enum lambda_init_type init_type; /* AWS_LAMBDA_INITIALIZATION_TYPE, set by Lambda */

    /* Trace-sampled profiling (the README's "Trace-sampled profiling"). */
    int trace_sample_threshold; /* PYROSCOPE_TRACE_SAMPLE_THRESHOLD 0..65535; -1 when unset */
    struct xray_archive_config {
        bool enabled;        /* XRAYPROFILE_THRESHOLD or XRAYPROFILE_S3_BUCKET set, and usable */
        int threshold;       /* XRAYPROFILE_THRESHOLD, default 0 */
        char *bucket;        /* XRAYPROFILE_S3_BUCKET; "" = xrayprofile-<accountId>-<region> */
        char *prefix;        /* XRAYPROFILE_S3_PREFIX, "" or ending in '/' */
        char *endpoint;      /* XRAYPROFILE_S3_ENDPOINT without a trailing '/'; "" = AWS */
        char *region;        /* AWS_REGION, else AWS_DEFAULT_REGION */
        char *access_key_id; /* AWS_ACCESS_KEY_ID (secret) */
        char *secret_key;    /* AWS_SECRET_ACCESS_KEY (secret) */
        char *session_token; /* AWS_SESSION_TOKEN, "" when unset (secret) */
        /* Without AWS_ACCESS_KEY_ID (SnapStart): include/credentials.h. "" when unset. */
        char *container_uri;        /* AWS_CONTAINER_CREDENTIALS_FULL_URI */
        char *container_token;      /* AWS_CONTAINER_AUTHORIZATION_TOKEN (secret) */
        char *container_token_file; /* AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE */
    } xray;

    /* Set when a variable that says where profiles go or under whose name (the remote, the
     * token, the tenant) is set but unusable. Nothing is relayed then, and no credential leaves:
     * the relay stays up and answers every push with refusal, a text that names the variable
     * and the fix. NULL: the relay works. */
    const char *refusal_variable;
    char refusal[512];

    struct config_issue issues[CONFIG_MAX_ISSUES];
    size_t n_issues;

    /* Owned copies of the strings that log points to. */
    char *owned_log_strings[7];
};

typedef const char *(*config_getenv_fn)(void *ud, const char *name);

/* Fills c from the environment. Always succeeds (returns 0) except on allocation failure (-1).
 * Problems are recorded in c->issues. */
int config_load(struct config *c, config_getenv_fn getenv_fn, void *ud);
/* The process environment, for config_load. */
const char *config_getenv_process(void *ud, const char *name);
void config_free(struct config *c);

#endif
