"""A local container credentials endpoint (what AWS_CONTAINER_CREDENTIALS_FULL_URI points to),
on 127.0.0.1, for the tests of the per-trace archive's credentials.

It checks the Authorization header against the token it was given (404 and a line of text
otherwise, as AWS's does), answers with the next scripted answer, and records every request. An answer is
either a credentials dict (AccessKeyId, SecretAccessKey, Token; its Expiration is written from
`expires_in` seconds from now) or a raw (status, body) pair for bad answers. The last answer is
repeated once the script runs out. Standard library only."""

import http.server
import json
import threading
import time


def creds(akid, secret, token, expires_in=3600):
    return {"AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
            "expires_in": expires_in}


class CredentialsEndpoint:
    def __init__(self, token, answers, path="/2021-04-23/credentials"):
        self.token = token
        self.answers = list(answers)
        self.path = path
        self.requests = []  # dicts: path, authorization, status, time (wall clock, answered),
        #                     arrived (monotonic)
        self.delay = 0.0  # seconds before each answer (a long one: an endpoint that hangs)
        self.cond = threading.Condition()
        self._stopping = threading.Event()
        ep = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                auth = self.headers.get("Authorization")
                arrived = time.monotonic()
                if ep.delay and ep._stopping.wait(ep.delay):
                    self.close_connection = True
                    return
                status, body = ep._answer(self.path, auth)
                # Recorded before the answer leaves: once written, the extension may act on it
                # before this thread runs again, and a test that sees it act must see the record.
                with ep.cond:
                    ep.requests.append({"path": self.path, "authorization": auth,
                                        "status": status, "time": time.time(),
                                        "arrived": arrived})
                    ep.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.uri = "http://127.0.0.1:%d%s" % (self.httpd.server_address[1], path)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _answer(self, path, auth):
        if path != self.path:
            return 404, b'{"message":"not found"}'
        if auth != self.token:  # what AWS's own endpoint answers (its emulator's code)
            return 404, b"cannot get credentials for the provided token\n"
        with self.cond:
            a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(a, tuple):
            return a
        body = {k: v for k, v in a.items() if k != "expires_in"}
        body["Expiration"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                           time.gmtime(time.time() + a["expires_in"]))
        return 200, json.dumps(body).encode()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait_requests(self, count, timeout=10.0):
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("credentials endpoint: waited %.1fs for %d requests; "
                                         "got %r" % (timeout, count, self.requests))
                self.cond.wait(left)
            return list(self.requests)
