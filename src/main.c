/* Wires configuration -> loop -> parts. No logic of its own. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>

#include "about.h"
#include "buf.h"
#include "config.h"
#include "lifecycle.h"
#include "log.h"

static void log_config_issues(const struct config *c)
{
    for (size_t i = 0; i < c->n_issues; i++) {
        const struct config_issue *is = &c->issues[i];
        LOG_AT(is->level,
               is->level == LOG_LEVEL_WARN ? "invalid value, default used"
                                           : "invalid configuration",
               LKS("variable", is->variable) LKS("value", is->value)
                   LKS("default", is->default_value) LKS("error", is->detail));
    }
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int main(int argc, char **argv)
{
    int code = about_main(argc, argv, stdout, stderr); /* --version, --help */
    if (code >= 0)
        return code;
    /* A write to a socket its peer has reset must be an EPIPE that the writer handles, never the
     * signal that kills us with every accepted profile still queued. The layer's wolfSSL writes
     * curl's sockets with no MSG_NOSIGNAL, and curl's own guard is off (CURLOPT_NOSIGNAL): when
     * curl checks a kept-alive HTTP/2 connection the remote has closed, it reads the GOAWAY and
     * the close_notify, answers, and wolfSSL's close_notify then meets the reset socket. libuv
     * writes with write(2) too. Nothing of ours wants the signal. */
    signal(SIGPIPE, SIG_IGN);
    struct config cfg;
    if (config_load(&cfg, config_getenv_process, NULL) != 0)
        return 1;
    log_configure(&cfg.log);
    log_info("starting", LKS("version", PLE_VERSION));
    log_config_issues(&cfg);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct app app = {.loop = &loop, .cfg = &cfg, .ext_name = base_name(argv[0])};
    queue_init(&app.q, cfg.queue_max_count, cfg.queue_max_bytes);
    if (header_policy_init(&app.policy, &cfg) != 0)
        return 1;
    session_id_generate(app.session_id);

    lifecycle_init(&app);
    /* Listen before anything else: a profiler may push as soon as the function's init starts. */
    app.server =
        relay_server_start(&loop, &cfg, &app.q, &app.policy, app.session_id, &app.listen_error);
    credentials_init(&app.creds, &loop, &cfg, &app.q);
    trace_sampling_init(&app.sampling, &cfg, &app.q, &app.creds.sign, app.function_name,
                        app.account_id, app.invoke.request_id);
    if (app.server && app.sampling.active)
        relay_server_set_hooks(app.server, &app.sampling.hooks);
    lifecycle_start(&app);
    uv_run(&loop, UV_RUN_DEFAULT);

    queue_dispose(&app.q);
    header_policy_free(&app.policy);
    if (uv_loop_close(&loop) != 0)
        log_warn("loop closed with handles still open", );
    curl_global_cleanup();
    body_cache_clear();
    config_free(&cfg);
    return app.exit_code;
}
