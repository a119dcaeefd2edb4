/* The archive's AWS credentials, static or from the container credentials endpoint. See
 * include/credentials.h. */
#include "credentials.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "retry.h"
#include "util.h"

#define TOKEN_MAX 16384

/* ---- on the loop ---- */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static enum aws_sign_state check(void *ud);
static void fetch_once(struct credentials *c);

static void set_sign(struct credentials *c)
{
    c->sign.access_key = c->have ? c->cur.access_key : "";
    c->sign.secret_key = c->have ? c->cur.secret_key : "";
    c->sign.session_token = c->have ? c->cur.token : "";
}

void credentials_init(struct credentials *c, uv_loop_t *loop, const struct config *cfg,
                      struct queue *q)
{
    const struct xray_archive_config *x = &cfg->xray;
    *c = (struct credentials){.loop = loop, .x = x, .q = q};
    snprintf(c->sign.sigv4, sizeof(c->sign.sigv4), "aws:amz:%s:s3", x->region ? x->region : "");
    c->sign.access_key = x->access_key_id ? x->access_key_id : "";
    c->sign.secret_key = x->secret_key ? x->secret_key : "";
    c->sign.session_token = x->session_token ? x->session_token : "";
    c->from_endpoint = x->enabled && x->container_uri && *x->container_uri &&
                       !(*c->sign.access_key && *c->sign.secret_key);
    if (!c->from_endpoint)
        return;
    set_sign(c);
    c->sign.check = check;
    c->sign.check_ud = c;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    log_info("per-trace archive: AWS credentials from the container credentials endpoint",
             LKS("uri", x->container_uri));
}

void credentials_attach(struct credentials *c, struct upstream *up)
{
    c->up = up;
    if (c->from_endpoint)
        queue_kick(c->q); /* an upload that waited for the uploader asks again */
}

/* The token, from the file (which wins, as in the AWS SDKs) or the variable. Returns a malloc'ed
 * copy, or NULL with why set; an empty result means no Authorization header. */
static char *read_token(const struct credentials *c, char *why, size_t cap)
{
    const char *file = c->x->container_token_file;
    char *tok = NULL;
    if (file && *file) {
        /* Blocking, but a local file of a few hundred bytes, read once per fetch (hourly). */
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        tok = fd >= 0 ? calloc(1, TOKEN_MAX + 1) : NULL;
        ssize_t n = tok ? read(fd, tok, TOKEN_MAX + 1) : -1;
        int err = errno;
        if (fd >= 0)
            close(fd);
        if (n < 0 || n > TOKEN_MAX) {
            snprintf(why, cap, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s", file,
                     n > TOKEN_MAX ? "larger than 16 KiB" : strerror(err));
            free_secret(tok);
            return NULL;
        }
        while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
            tok[--n] = '\0'; /* the newline an editor or echo leaves */
    } else {
        const char *v = c->x->container_token;
        tok = strdup(v ? v : "");
    }
    if (tok && strpbrk(tok, "\r\n")) {
        snprintf(why, cap, "the authorization token holds a line break");
        free_secret(tok);
        return NULL;
    }
    if (!tok)
        snprintf(why, cap, "out of memory");
    return tok;
}

static void on_timer(uv_timer_t *t);

static void schedule(struct credentials *c, int64_t delay_ms)
{
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_timer, delay_ms > 0 ? (uint64_t)delay_ms : 0, 0);
}

/* A round of attempts is over without credentials. */
static void round_failed(struct credentials *c, const char *why)
{
    c->busy = false;
    c->failed_at_ms = uv_now(c->loop);
    bool usable = c->have && now_s() < c->stale_at_s;
    if (!c->failure_logged) {
        c->failure_logged = true;
        if (usable)
            log_warn("cannot refresh the archive's AWS credentials; the current ones are used "
                     "until shortly before they expire",
                     LKS("uri", c->x->container_uri) LKS("error", why)
                         LKI("expires_in_s", c->cur.expiration_s - now_s()));
        else
            log_error("cannot get AWS credentials for the per-trace archive: its uploads are not "
                      "sent until they can be had",
                      LKS("uri", c->x->container_uri) LKS("error", why));
    } else {
        log_debug("AWS credentials: fetch failed again", LKS("error", why));
    }
    if (usable) /* try again before they go stale */
        schedule(c, CREDENTIALS_RETRY_MS);
    if (!c->in_check)     /* the uploader asking now gets the answer from check() itself */
        queue_kick(c->q); /* what waited fails now (or goes, with the current ones) */
}

/* One fetch: which generation (restore) it was made in. */
struct ticket {
    struct credentials *c;
    unsigned gen;
};

static void on_fetched(void *ud, int curl_code, long status, const char *body, size_t len,
                       const char *error)
{
    struct ticket *tk = ud;
    struct credentials *c = tk->c;
    unsigned gen = tk->gen;
    free(tk);
    if (c->closed)
        return;
    if (gen != c->gen) {  /* made before the restore: its answer is not this copy's */
        queue_kick(c->q); /* what waited on it asks again */
        return;
    }
    char why[200] = "";
    bool retryable = false;
    struct aws_credentials got;
    if (curl_code != CURLE_OK) {
        snprintf(why, sizeof(why), "no answer: %s", error);
        retryable = true;
    } else if (status != 200) {
        /* Its first words say why (AWS's: "cannot get credentials for the provided token"); an
         * error answer holds no credentials. Printable ASCII only, on one line. */
        char said[81];
        size_t n = 0;
        for (size_t i = 0; i < len && n + 1 < sizeof(said); i++)
            said[n++] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : ' ';
        said[n] = '\0';
        snprintf(why, sizeof(why), "the endpoint answered HTTP %ld%s%s", status, n ? ": " : "",
                 said);
        retryable = retry_is_retryable(CURLE_OK, status);
    } else if (credentials_parse(body, len, &got, why, sizeof(why)) != 0) {
        /* why says what is wrong; asking again would get the same answer */
    } else if (got.expiration_s <= now_s()) {
        /* Taken as they are, they would be fetched again at once, and again. */
        snprintf(why, sizeof(why), "the answer's Expiration is %lld s in the past",
                 (long long)(now_s() - got.expiration_s));
        credentials_clear_parsed(&got);
    } else {
        credentials_clear_parsed(&c->cur);
        c->cur = got;
        c->have = true;
        set_sign(c);
        int64_t now = now_s();
        credentials_schedule(now, got.expiration_s, &c->refresh_at_s, &c->stale_at_s);
        c->busy = false;
        c->attempts = 0;
        c->failed_at_ms = 0;
        if (c->failure_logged)
            log_info("AWS credentials for the per-trace archive fetched again", );
        c->failure_logged = false;
        log_debug("AWS credentials fetched", LKI("expires_in_s", got.expiration_s - now)
                                                 LKI("refresh_in_s", c->refresh_at_s - now));
        schedule(c, (c->refresh_at_s - now) * 1000);
        queue_kick(c->q);
        return;
    }
    if (retryable && c->attempts < CREDENTIALS_ATTEMPTS) {
        log_debug("AWS credentials: fetch failed; trying again", LKS("error", why));
        c->retry_due = true;
        schedule(c, 200 * (int64_t)c->attempts);
        return;
    }
    round_failed(c, why);
}

static void fetch_once(struct credentials *c)
{
    char why[200] = ""; /* c->up is set: check() fetches only once the uploader is attached */
    char *tok = read_token(c, why, sizeof(why));
    if (!tok) {
        c->attempts = CREDENTIALS_ATTEMPTS;
        round_failed(c, why);
        return;
    }
    char *header = NULL;
    if (*tok && asprintf(&header, "Authorization: %s", tok) < 0)
        header = NULL;
    free_secret(tok);
    c->attempts++;
    c->busy = true;
    struct ticket *tk = malloc(sizeof(*tk));
    if (tk)
        *tk = (struct ticket){c, c->gen};
    if (!tk || upstream_fetch(c->up, c->x->container_uri, header, on_fetched, tk) != 0) {
        free(tk);
        free_secret(header);
        round_failed(c, "cannot start the request (out of memory, or shutting down)");
        return;
    }
    free_secret(header);
}

static void on_timer(uv_timer_t *t)
{
    struct credentials *c = t->data;
    if (c->closed)
        return;
    if (c->retry_due) {
        c->retry_due = false;
        fetch_once(c); /* the next attempt of a round */
        return;
    }
    if (c->busy)
        return;
    c->attempts = 0; /* a refresh before Expiration: a new round, the current ones stay in use */
    c->busy = true;
    fetch_once(c);
}

static enum aws_sign_state check(void *ud)
{
    struct credentials *c = ud;
    if (c->have && now_s() < c->stale_at_s)
        return SIGN_READY;
    if (c->busy)
        return SIGN_PENDING;
    if (!c->up)
        return SIGN_PENDING; /* credentials_attach kicks the queue */
    if (c->failed_at_ms && uv_now(c->loop) - c->failed_at_ms < CREDENTIALS_RETRY_MS)
        return SIGN_FAILED;
    c->attempts = 0;
    c->busy = true;
    c->in_check = true;
    fetch_once(c);
    c->in_check = false;
    return c->busy ? SIGN_PENDING : SIGN_FAILED;
}

void credentials_after_restore(struct credentials *c)
{
    if (!c->from_endpoint || c->closed)
        return;
    c->gen++;
    credentials_clear_parsed(&c->cur);
    c->have = false;
    set_sign(c);
    c->failed_at_ms = 0;
    c->failure_logged = false;
    uv_timer_stop(&c->timer);
    c->busy = c->retry_due = false; /* a fetch in flight is ignored when it ends */
    log_debug("after restore: AWS credentials from before the snapshot dropped", );
    queue_kick(c->q); /* an upload held for them asks again, and a new fetch starts */
}

void credentials_close(struct credentials *c)
{
    if (c->closed)
        return;
    c->closed = true;
    credentials_clear_parsed(&c->cur);
    c->have = false;
    set_sign(c);
    if (c->from_endpoint)
        uv_close((uv_handle_t *)&c->timer, NULL);
}
