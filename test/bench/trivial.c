/* The reference for cold-start figures: the least a relay extension must do before it can
 * register, with nothing else. Binds and listens on 127.0.0.1:PYROSCOPE_RELAY_PORT, connects to
 * AWS_LAMBDA_RUNTIME_API (numeric host:port) and sends a register request, then waits for the
 * answer and exits. Blocking calls are fine here: this program is only a yardstick. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
    const char *port = getenv("PYROSCOPE_RELAY_PORT");
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!port || !api || !strchr(api, ':'))
        return 2;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 16) != 0)
        return 3;
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int)(strchr(api, ':') - api), api);
    struct sockaddr_in r = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(strchr(api, ':') + 1))};
    inet_pton(AF_INET, host, &r.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&r, sizeof(r)) != 0)
        return 4;
    const char req[] = "POST /2020-01-01/extension/register HTTP/1.1\r\nHost: x\r\n"
                       "Content-Length: 0\r\n\r\n";
    if (write(s, req, sizeof(req) - 1) < 0)
        return 5;
    char buf[512];
    (void)read(s, buf, sizeof(buf));
    return 0;
}
