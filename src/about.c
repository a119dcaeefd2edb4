/* --version and --help. See include/about.h. */
#include "about.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <llhttp.h>
#include <uv.h>

/* "libcurl 7.88.1 (OpenSSL/3.0.11), libuv 1.44.2, jansson 2.14, llhttp 8.1.0" into buf. */
static void about_libraries(char *buf, size_t cap)
{
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    char tls[96] = "";
    if (cv->ssl_version && *cv->ssl_version)
        snprintf(tls, sizeof(tls), " (%s%s%s%s%s)", cv->ssl_version, cv->ares ? ", c-ares/" : "",
                 cv->ares ? cv->ares : "", cv->nghttp2_version ? ", nghttp2/" : "",
                 cv->nghttp2_version ? cv->nghttp2_version : "");
    snprintf(buf, cap, "libcurl %s%s, libuv %s, jansson %s, llhttp %d.%d.%d", cv->version, tls,
             uv_version_string(), jansson_version_str(), LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
             LLHTTP_VERSION_PATCH);
}

/* The layer ships extensions/.<name>.versions beside the binary: the Debian source package
 * versions it was built from and where the zip's timestamps came from. */
static void print_versions_file(FILE *out)
{
    char exe[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = '\0';
    snprintf(path, sizeof(path), "%s/.%s.versions", exe, slash + 1);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fprintf(out, "built from (%s):\n", path);
    char line[512];
    while (fgets(line, sizeof(line), f))
        fprintf(out, "  %s%s", line, strchr(line, '\n') ? "" : "\n");
    fclose(f);
}

static void print_version(FILE *out)
{
    char libs[512];
    about_libraries(libs, sizeof(libs));
    fprintf(out, "%s %s\n%s\n", ABOUT_NAME, PLE_VERSION, libs);
    print_versions_file(out);
}

static void print_usage(FILE *out)
{
    fputs(ABOUT_NAME " " PLE_VERSION
                     ": an AWS Lambda extension that relays Pyroscope profiles from\n"
                     "http://localhost:4040 to a remote Pyroscope server.\n"
                     "\n"
                     "Usage: " ABOUT_NAME " [--version | --help]\n"
                     "  Without arguments it runs as a Lambda extension (AWS_LAMBDA_RUNTIME_API), "
                     "or alone\n"
                     "  with PYROSCOPE_DEV_MODE=true. It is configured by environment variables "
                     "only:\n"
                     "\n"
                     "  PYROSCOPE_REMOTE_ADDRESS   the server, http(s)://host[:port][/base] "
                     "(unset: https://ingest.pyroscope.cloud)\n"
                     "  PYROSCOPE_AUTH_TOKEN       bearer token; or PYROSCOPE_BASIC_AUTH_USER and "
                     "PYROSCOPE_BASIC_AUTH_PASSWORD\n"
                     "  PYROSCOPE_TENANT_ID        X-Scope-OrgID\n"
                     "  PYROSCOPE_HTTP_HEADERS     extra headers, a JSON object of strings\n"
                     "  PYROSCOPE_FLUSH_ON_INVOKE  finish every upload before the next event "
                     "(false)\n"
                     "  PYROSCOPE_FLUSH_STRATEGY   when: end, next-invoke or auto (auto)\n"
                     "  PYROSCOPE_TIMEOUT, PYROSCOPE_NUM_WORKERS, PYROSCOPE_MAX_RETRIES\n"
                     "  PYROSCOPE_SELF_PROFILING, PYROSCOPE_SELF_PROFILING_INTERVAL\n"
                     "  PYROSCOPE_LOG_LEVEL, PYROSCOPE_LOG_FORMAT, PYROSCOPE_LOG_TIMESTAMP_* and "
                     "PYROSCOPE_LOG_*_FIELD_NAME\n"
                     "  PYROSCOPE_DEV_MODE, PYROSCOPE_RELAY_PORT, PYROSCOPE_QUEUE_MAX_COUNT, "
                     "PYROSCOPE_QUEUE_MAX_BYTES,\n"
                     "  PYROSCOPE_MAX_BODY_BYTES, PYROSCOPE_MAX_HEADER_BYTES, "
                     "PYROSCOPE_MAX_CONNECTIONS, PYROSCOPE_CLIENT_TIMEOUT\n"
                     "  PYROSCOPE_TRACE_SAMPLE_THRESHOLD, XRAYPROFILE_THRESHOLD, "
                     "XRAYPROFILE_S3_BUCKET, XRAYPROFILE_S3_PREFIX,\n"
                     "  XRAYPROFILE_S3_ENDPOINT\n"
                     "\n"
                     "Every variable with its default and meaning: README.md, section "
                     "\"Configuration\",\n"
                     "in this extension's source.\n",
          out);
}

int about_main(int argc, char **argv, FILE *out, FILE *err)
{
    if (argc < 2)
        return -1;
    const char *a = argv[1];
    bool version = strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0;
    bool help = strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
    if (argc == 2 && (version || help)) {
        if (version)
            print_version(out);
        else
            print_usage(out);
        return fflush(out) == 0 ? 0 : 1;
    }
    fprintf(err, "%s: unknown argument '%s'\n\n", ABOUT_NAME, a);
    print_usage(err);
    return 2;
}
