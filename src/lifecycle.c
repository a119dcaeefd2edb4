/* The Extensions API lifecycle and the shutdown drain. See include/lifecycle.h. */
#include "lifecycle.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "upstream.h"
#include "version.h"

#define API_BASE "/2020-01-01/extension"

static void poll_next(struct app *app);
static void begin_exit(struct app *app, int code);

static int64_t epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy_json_string(json_t *obj, const char *key, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(obj, key));
    snprintf(out, cap, "%s", v ? v : "");
}

/* ---- exit ---- */

static void on_exit_timer(uv_timer_t *t)
{
    struct app *app = t->data;
    const struct queue_stats *st = &app->q.stats;
    log_info("shutdown summary",
             LKI("accepted", st->accepted) LKI("relayed", st->relayed) LKI("failed", st->failed)
                 LKI("rejected", st->rejected) LKI("pending", queue_pending(&app->q))
                     LKI("invokes", app->invoke.seq) LKI("post_runtime_ms", app->post_runtime_ms)
                         LKI("exit_code", app->exit_code)
                             LKI("refused_config", relay_server_refused_config(app->server))
                                 LKS("version", PLE_VERSION));
    if (app->cfg->refusal_variable)
        log_error("nothing was relayed: the configuration is invalid",
                  LKS("variable", app->cfg->refusal_variable)
                      LKI("refused", relay_server_refused_config(app->server)));
    const struct trace_sampling_stats *ts = &app->sampling.stats;
    if (app->cfg->trace_sample_threshold >= 0)
        log_info("trace sampling summary",
                 LKI("invokes_relayed", ts->invokes_relayed) LKI("sampled_out", ts->sampled_out));
    if (app->cfg->xray.enabled)
        log_info("per-trace archive summary",
                 LKI("invokes_archived", ts->invokes_archived) LKI("queued", st->archive_accepted)
                     LKI("archived", st->archived) LKI("failed", st->archive_failed)
                         LKI("dropped", st->archive_rejected + ts->archive_dropped));
    for (const struct relay_req *r = app->q.head; r; r = r->next)
        log_not_delivered(r, "upload not delivered: still queued at exit");
    if (app->waiter)
        queue_cancel_wait(&app->q, app->waiter);
    app->waiter = NULL;
    /* Every part closes its handles; uv_run returns in main once the last one is closed. */
    credentials_close(&app->creds); /* before the uploader, which ends its fetch */
    if (app->upstream)
        upstream_close(app->upstream, NULL, NULL); /* logs and fails what is in flight */
    app->upstream = NULL;
    selfprof_close(app->selfprof);
    app->selfprof = NULL;
    if (app->server)
        relay_server_close(app->server, NULL, NULL);
    app->server = NULL;
    if (app->api)
        extapi_close(app->api); /* before the telemetry: it cancels the subscription's callback */
    app->api = NULL;
    telemetry_close(app->telemetry);
    app->telemetry = NULL;
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->timer, NULL);
}

/* Exits from a fresh loop turn: callers may be deep inside the queue or the uploader. */
static void begin_exit(struct app *app, int code)
{
    if (app->state == APP_EXITING)
        return;
    app->state = APP_EXITING;
    app->exit_code = code;
    uv_timer_stop(&app->timer);
    uv_timer_start(&app->timer, on_exit_timer, 0, 0);
}

/* ---- waiting for the uploads: flush on invoke and the shutdown drain ---- */

static void await_over(struct app *app, bool idle)
{
    void (*then)(struct app *, bool) = app->await_then;
    app->await_then = NULL;
    then(app, idle);
}

static void on_await_idle(void *ud)
{
    struct app *app = ud;
    app->waiter = NULL;
    uv_timer_stop(&app->timer);
    await_over(app, true);
}

static void on_await_deadline(uv_timer_t *t)
{
    struct app *app = t->data;
    if (app->waiter)
        queue_cancel_wait(&app->q, app->waiter);
    app->waiter = NULL;
    await_over(app, false);
}

/* Calls then(app, true) once nothing is queued or in flight, or then(app, false) after
 * budget_ms, whichever comes first. Replaces a wait already under way. Never blocks. */
static void await_idle(struct app *app, int64_t budget_ms, void (*then)(struct app *, bool))
{
    uv_timer_stop(&app->timer);
    if (app->waiter)
        queue_cancel_wait(&app->q, app->waiter);
    app->waiter = NULL;
    app->await_then = then;
    app->wait_started_ms = uv_now(app->loop);
    uv_timer_start(&app->timer, on_await_deadline, budget_ms > 0 ? (uint64_t)budget_ms : 0, 0);
    app->waiter = queue_when_idle(&app->q, on_await_idle, app); /* may call back at once */
}

static void drained(struct app *app, bool idle)
{
    if (idle)
        log_info("drained: every accepted upload is finished",
                 LKI("waited_ms", uv_now(app->loop) - app->wait_started_ms));
    else
        log_warn("drain deadline reached; exiting with uploads pending",
                 LKI("pending", queue_pending(&app->q)));
    begin_exit(app, 0);
}

/* Stops accepting and waits for the queue to empty, at most budget_ms. */
static void shutdown_drain(struct app *app, int64_t budget_ms)
{
    if (app->state == APP_DRAINING || app->state == APP_EXITING)
        return;
    app->state = APP_DRAINING;
    if (app->server)
        relay_server_stop_accepting(app->server);
    selfprof_flush(app->selfprof, true); /* the last self-profile is drained like any upload */
    log_info("draining", LKI("pending", queue_pending(&app->q)) LKI("budget_ms", budget_ms));
    await_idle(app, budget_ms, drained);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    log_info("signal received", LKS("signal", signum == SIGINT ? "SIGINT" : "SIGTERM"));
    shutdown_drain(app, app->cfg->timeout_ns / 1000000);
}

/* ---- uploads ---- */

/* curl's global init (TLS library included) is deferred until /register has been sent: it is
 * not needed to register, and the time to register is the cold start the user pays for. */
static void start_uploads(void *ud)
{
    struct app *app = ud;
    if (app->upstream || app->state == APP_EXITING)
        return;
    if (app->cfg->refusal_variable) {
        /* No uploader, no self-profile: nothing may leave (config.h: refusal). */
        log_error("nothing is relayed: every push is answered 500 until the configuration is "
                  "fixed",
                  LKS("variable", app->cfg->refusal_variable));
        return;
    }
    char remote[512];
    url_redact(app->cfg->remote_address, remote, sizeof(remote));
    log_info("relaying",
             LKS("remote", remote) LKI("workers", app->cfg->num_workers)
                 LKI("timeout_ms", app->cfg->timeout_ns / 1000000)
                     LKS("flush_on_invoke", app->cfg->flush_on_invoke ? "true" : "false")
                         LKS("flush_strategy", flush_strategy_name(app->cfg->flush_strategy)));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        !(app->upstream = upstream_new(app->loop, &app->q, app->cfg))) {
        log_error("cannot start the uploader (libcurl)", );
        begin_exit(app, 1);
        return;
    }
    credentials_attach(&app->creds, app->upstream);
    if (app->cfg->self_profiling)
        app->selfprof = selfprof_start(app->loop, app->cfg, &app->q, &app->policy, app->session_id);
}

/* ---- Extensions API ---- */

static void on_error_reported(void *ud, const struct extapi_response *r)
{
    struct app *app = ud;
    if (r->error || r->status != 202)
        log_warn("error report not acknowledged",
                 LKI("status", r->status) LKS("error", r->error ? uv_strerror(r->error) : ""));
    begin_exit(app, 1);
}

/* POST /init/error or /exit/error, then exit non-zero. */
static void report_error(struct app *app, const char *which, const char *type, const char *msg)
{
    char path[64], type_hdr[192];
    snprintf(path, sizeof(path), API_BASE "/%s/error", which);
    snprintf(type_hdr, sizeof(type_hdr), "Lambda-Extension-Function-Error-Type: %s", type);
    const char *headers[] = {app->id_header, type_hdr, NULL};
    json_t *body =
        json_pack("{s:s, s:s, s:[]}", "errorMessage", msg, "errorType", type, "stackTrace");
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (extapi_call(app->api, "POST", path, headers, text, on_error_reported, NULL, app) != 0)
        begin_exit(app, 1);
    free(text);
}

static void flushed(struct app *app, bool idle)
{
    if (idle)
        log_debug("flush done", LKI("waited_ms", uv_now(app->loop) - app->wait_started_ms));
    else
        log_warn("flush gave up at the invoke deadline; uploads still pending",
                 LKI("pending", queue_pending(&app->q)) LKS("requestId", app->invoke.request_id));
    poll_next(app);
}

/* What is left of the invoke for flushing: up to its deadline, less FLUSH_MARGIN_MS. */
static int64_t flush_budget_ms(const struct app *app)
{
    return app->invoke.deadline_ms - FLUSH_MARGIN_MS - epoch_ms();
}

/* Await the uploads queued so far (bounded by the invoke's deadline), then poll /event/next. */
static void flush_then_next(struct app *app)
{
    if (queue_idle(&app->q)) {
        poll_next(app);
        return;
    }
    app->state = APP_FLUSHING;
    int64_t budget = flush_budget_ms(app);
    log_debug("flushing before the next event",
              LKI("pending", queue_pending(&app->q)) LKI("budget_ms", budget));
    await_idle(app, budget, flushed);
}

static void on_runtime_wait_over(uv_timer_t *t)
{
    struct app *app = t->data;
    if (flush_policy_gave_up(&app->flush))
        log_warn("platform.runtimeDone did not come: from now on uploads are flushed when the "
                 "next event arrives",
                 LKS("requestId", app->invoke.request_id)
                     LKI("waited_ms", uv_now(app->loop) - app->wait_started_ms));
    flush_then_next(app);
}

/* Strategy end: wait for runtimeDone, no longer than wait_ms and never past the deadline. */
static void await_runtime_done(struct app *app, int64_t wait_ms)
{
    int64_t budget = flush_budget_ms(app);
    if (wait_ms > budget)
        wait_ms = budget;
    log_debug("waiting for platform.runtimeDone",
              LKS("requestId", app->invoke.request_id) LKI("at_most_ms", wait_ms));
    app->state = APP_AWAIT_RUNTIME;
    uv_timer_stop(&app->timer);
    uv_timer_start(&app->timer, on_runtime_wait_over, wait_ms > 0 ? (uint64_t)wait_ms : 0, 0);
}

static void on_telemetry(void *ud, const struct telemetry_event *ev)
{
    struct app *app = ud;
    if (ev->kind == TELEMETRY_RESTORE_START)
        snapstart_restored(app, "platform.restoreStart"); /* once, whichever tells first */
    if (ev->kind == TELEMETRY_RUNTIME_DONE)
        app->last_runtime_done_ms = uv_now(app->loop); /* perhaps before its INVOKE is read */
    if (!flush_policy_event(&app->flush, ev))
        return;
    if (ev->kind == TELEMETRY_RUNTIME_DONE) {
        app->runtime_done_ms = app->last_runtime_done_ms;
        if (app->polled_seq == app->invoke.seq) /* /event/next was polled before it */
            log_debug("invoke done", LKS("requestId", ev->request_id) LKI("post_runtime_ms", 0));
    }
    if (app->state != APP_AWAIT_RUNTIME)
        return;
    if (flush_policy_runtime_done(&app->flush))
        flush_then_next(app);
    else /* platform.start: the stream is alive, runtimeDone will tell */
        await_runtime_done(app, INT64_MAX);
}

static void on_subscribed(void *ud, bool ok)
{
    struct app *app = ud;
    app->flush.telemetry = ok;         /* an answer after the timeout below still counts */
    if (app->state == APP_REGISTERING) /* not when a signal began the drain meanwhile */
        poll_next(app);
}

/* The Telemetry API is local and answers in milliseconds; init must not wait on it for long. */
#define SUBSCRIBE_TIMEOUT_MS 2000

static void on_subscribe_timeout(uv_timer_t *t)
{
    struct app *app = t->data;
    if (app->state != APP_REGISTERING)
        return;
    log_warn("Telemetry API subscription unanswered: uploads are flushed when the next event "
             "arrives",
             LKI("waited_ms", SUBSCRIBE_TIMEOUT_MS));
    app->flush.telemetry = false;
    poll_next(app);
}

/* Flush-on-invoke listens to the Telemetry API to know when the runtime has finished. The
 * subscription is answered before the first /event/next, as AWS's examples do: init ends when
 * every extension has polled, and a subscription belongs to init. */
static void start_telemetry_then_next(struct app *app)
{
    if (!app->cfg->flush_on_invoke || app->managed_instances) {
        poll_next(app);
        return;
    }
    int err = 0;
    app->telemetry =
        telemetry_start(app->loop, app->cfg->client_timeout_ns / 1000000, on_telemetry, app, &err);
    if (!app->telemetry) {
        log_warn("cannot listen for the Telemetry API: uploads are flushed when the next event "
                 "arrives",
                 LKS("error", uv_strerror(err)));
        poll_next(app);
        return;
    }
    telemetry_subscribe(app->telemetry, app->api, app->id_header, on_subscribed, app);
    if (app->state == APP_REGISTERING) { /* poll_next stops it */
        uv_timer_stop(&app->timer);
        uv_timer_start(&app->timer, on_subscribe_timeout, SUBSCRIBE_TIMEOUT_MS, 0);
    }
}

static void on_invoke(struct app *app, json_t *ev)
{
    struct invoke *inv = &app->invoke;
    inv->seq++;
    copy_json_string(ev, "requestId", inv->request_id, sizeof(inv->request_id));
    inv->deadline_ms = (int64_t)json_integer_value(json_object_get(ev, "deadlineMs"));
    json_t *tracing = json_object_get(ev, "tracing");
    copy_json_string(tracing, "value", inv->tracing, sizeof(inv->tracing));
    if (strlen(app->account_id) != 12) { /* /register did not say: the invoked ARN has it */
        char arn[256];
        copy_json_string(ev, "invokedFunctionArn", arn, sizeof(arn));
        arn_account_id(arn, app->account_id, sizeof(app->account_id));
    }
    trace_sampling_invoke(&app->sampling, inv->tracing);
    log_debug("invoke", LKS("requestId", inv->request_id) LKI("seq", inv->seq));
    if (!app->cfg->flush_on_invoke) {
        poll_next(app);
        return;
    }
    bool end, switched;
    app->runtime_done_ms = 0;
    app->wait_started_ms = uv_now(app->loop);
    enum flush_when when =
        flush_policy_invoke(&app->flush, inv->request_id, uv_now(app->loop), &end, &switched);
    if (switched)
        log_debug("flush strategy auto: switching",
                  LKS("to", flush_strategy_name(end ? FLUSH_END : FLUSH_NEXT_INVOKE))
                      LKI("gap_ms", app->flush.gap_ewma_ms));
    if (when == FLUSH_WHEN_RUNTIME_DONE)
        await_runtime_done(app, INT64_MAX);
    else if (when == FLUSH_WHEN_STREAM_ALIVE)
        await_runtime_done(app, FLUSH_START_GRACE_MS);
    else {
        if (flush_policy_runtime_done(&app->flush))
            app->runtime_done_ms = app->last_runtime_done_ms;
        flush_then_next(app);
    }
}

static void on_shutdown_event(struct app *app, json_t *ev)
{
    char reason[32];
    copy_json_string(ev, "shutdownReason", reason, sizeof(reason));
    int64_t deadline = (int64_t)json_integer_value(json_object_get(ev, "deadlineMs"));
    bool normal = strcasecmp(reason, "spindown") == 0;
    LOG_AT(normal ? LOG_LEVEL_INFO : LOG_LEVEL_WARN, "shutdown event", LKS("reason", reason));
    int64_t budget =
        deadline > 0 ? deadline - SHUTDOWN_MARGIN_MS - epoch_ms() : app->cfg->timeout_ns / 1000000;
    shutdown_drain(app, budget);
}

static void on_event(void *ud, const struct extapi_response *r)
{
    struct app *app = ud;
    if (app->state != APP_WAITING_EVENT)
        return;
    if (r->error || r->status != 200) {
        log_error("event/next failed",
                  LKI("status", r->status) LKS("error", r->error ? uv_strerror(r->error) : "")
                      LKS("response", r->body));
        report_error(app, "exit", "Extension.NextFailed", "GET event/next failed");
        return;
    }
    json_error_t jerr;
    json_t *ev = json_loadb(r->body, r->body_len, 0, &jerr);
    const char *type = json_string_value(json_object_get(ev, "eventType"));
    snapstart_on_event(app); /* SnapStart: the first event after init is the restore */
    if (type && strcmp(type, "INVOKE") == 0) {
        on_invoke(app, ev);
    } else if (type && strcmp(type, "SHUTDOWN") == 0) {
        on_shutdown_event(app, ev);
    } else {
        log_warn("unexpected event ignored",
                 LKS("eventType", type ? type : "") LKS("error", ev ? "" : jerr.text));
        poll_next(app);
    }
    json_decref(ev);
}

/* Post-runtime time: from runtimeDone of the invoke to this /event/next, billed by Lambda. */
static void count_post_runtime(struct app *app)
{
    if (app->polled_seq == app->invoke.seq)
        return;
    app->polled_seq = app->invoke.seq;
    if (!app->runtime_done_ms)
        return; /* runtimeDone comes later (counted 0 then) or not at all */
    uint64_t ms = uv_now(app->loop) - app->runtime_done_ms;
    app->post_runtime_ms += ms;
    log_debug("invoke done", LKS("requestId", app->invoke.request_id) LKI("post_runtime_ms", ms));
}

static void poll_next(struct app *app)
{
    /* A signal may have started the drain meanwhile (during /register, say): the drain decides
     * what comes next, and polling again would replace its wait. */
    if (app->state == APP_DRAINING || app->state == APP_EXITING)
        return;
    /* Whatever the timer was bounding (the wait for runtimeDone, a flush) is over: left running,
     * it would poll /event/next a second time while this call is pending. */
    uv_timer_stop(&app->timer);
    count_post_runtime(app);
    const char *headers[] = {app->id_header, NULL};
    app->state = APP_WAITING_EVENT;
    int rc =
        extapi_call(app->api, "GET", API_BASE "/event/next", headers, NULL, on_event, NULL, app);
    if (rc != 0) {
        log_error("cannot poll event/next", LKS("error", uv_strerror(rc)));
        report_error(app, "exit", "Extension.NextFailed", "cannot poll event/next");
    }
}

static void register_extension(struct app *app);

/* Lambda Managed Instances: one environment serves several invokes at once and is never frozen,
 * and extensions get no INVOKE events. Uploads are relayed as they come (nothing waits for a
 * freeze, so flush-on-invoke has nothing to do), and an upload cannot be told apart between
 * concurrent invokes, so trace sampling and the per-trace archive cannot work. */
static void enter_managed_instances(struct app *app, const char *why)
{
    app->managed_instances = true;
    log_info("Lambda Managed Instances: registering for SHUTDOWN only; uploads are relayed "
             "continuously and drained at SHUTDOWN",
             LKS("reason", why));
    if (app->sampling.active) {
        if (app->server)
            relay_server_set_hooks(app->server, NULL);
        app->sampling.active = false;
        log_warn("trace sampling and the per-trace archive are off under Lambda Managed "
                 "Instances: concurrent invokes share the relay, so an upload cannot be "
                 "attributed to one invoke; every upload is relayed", );
    }
}

/* The Managed Instances answer to INVOKE: 403 {"errorType":"Extension.InvalidEventType"}. */
static bool invoke_refused(const struct extapi_response *r)
{
    return !r->error && r->status == 403 && strstr(r->body, "Extension.InvalidEventType");
}

static void on_registered(void *ud, const struct extapi_response *r)
{
    struct app *app = ud;
    if (invoke_refused(r) && !app->managed_instances) {
        /* Exiting here would be an Extension.Crash: the function could not run at all. */
        log_warn("register refused INVOKE events (Extension.InvalidEventType); retrying with "
                 "SHUTDOWN only", );
        enter_managed_instances(app, "register refused INVOKE");
        register_extension(app);
        return;
    }
    if (r->error || r->status != 200 || !r->ext_id) {
        log_error("register failed",
                  LKI("status", r->status) LKS("error", r->error ? uv_strerror(r->error) : "")
                      LKS("response", r->body));
        begin_exit(app, 1);
        return;
    }
    snprintf(app->id_header, sizeof(app->id_header), "Lambda-Extension-Identifier: %s", r->ext_id);
    json_t *body = json_loadb(r->body, r->body_len, 0, NULL);
    copy_json_string(body, "functionName", app->function_name, sizeof(app->function_name));
    copy_json_string(body, "functionVersion", app->function_version, sizeof(app->function_version));
    copy_json_string(body, "accountId", app->account_id, sizeof(app->account_id));
    json_decref(body);
    log_info("registered", LKS("extension", app->ext_name) LKS("function", app->function_name)
                               LKS("version", app->function_version));
    if (app->listen_error) {
        char msg[160];
        snprintf(msg, sizeof(msg), "cannot listen on 127.0.0.1:%u: %s",
                 (unsigned)app->cfg->relay_port, uv_strerror(app->listen_error));
        report_error(app, "init", "Extension.ListenFailed", msg);
        return;
    }
    start_telemetry_then_next(app);
    /* The next request is on its way: while the runtime runs its own init, parse the CA bundle
     * that the first upload would otherwise wait for. */
    upstream_prepare_tls(app->upstream);
}

static void register_extension(struct app *app)
{
    char name_hdr[320];
    snprintf(name_hdr, sizeof(name_hdr), "Lambda-Extension-Name: %s", app->ext_name);
    const char *headers[] = {name_hdr, "Lambda-Extension-Accept-Feature: accountId", NULL};
    app->state = APP_REGISTERING;
    const char *events = app->managed_instances ? "{\"events\":[\"SHUTDOWN\"]}"
                                                : "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}";
    int rc = extapi_call(app->api, "POST", API_BASE "/register", headers, events, on_registered,
                         app->listen_error ? NULL : start_uploads, app);
    if (rc != 0) {
        log_error("register failed", LKS("error", uv_strerror(rc)));
        begin_exit(app, 1);
    }
}

void lifecycle_init(struct app *app)
{
    flush_policy_init(&app->flush, app->cfg->flush_strategy);
    uv_timer_init(app->loop, &app->timer);
    app->timer.data = app;
    uv_signal_init(app->loop, &app->sigterm);
    uv_signal_init(app->loop, &app->sigint);
    app->sigterm.data = app->sigint.data = app;
    uv_signal_start(&app->sigterm, on_signal, SIGTERM);
    uv_signal_start(&app->sigint, on_signal, SIGINT);
    app->state = APP_STARTING;
}

void lifecycle_start(struct app *app)
{
    if (app->listen_error)
        log_error("cannot listen", LKS("address", "127.0.0.1") LKI("port", app->cfg->relay_port)
                                       LKS("error", uv_strerror(app->listen_error)));
    if (app->cfg->dev_mode) {
        log_info("dev mode: not registering with the Extensions API", );
        if (app->listen_error)
            begin_exit(app, 1);
        else {
            start_uploads(app);
            upstream_prepare_tls(app->upstream);
        }
        return;
    }
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    app->api = extapi_new(app->loop, api);
    if (!app->api) {
        log_error("not in Lambda (AWS_LAMBDA_RUNTIME_API unset or invalid); "
                  "set PYROSCOPE_DEV_MODE=true to run the relay alone", );
        begin_exit(app, 1);
        return;
    }
    if (app->cfg->init_type == INIT_MANAGED_INSTANCES)
        enter_managed_instances(app, "AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances");
    register_extension(app);
}
