"""A recording remote: the Pyroscope server the extension relays to, on 127.0.0.1.

It records every request (method, raw target, headers in order, body, the client's TCP port to
show connection reuse, arrival and answer times) and can misbehave on command: answer a given
status, answer slowly, hang until released, or close the connection without an answer. Tests wait
on its condition variable, never on sleeps. Standard library only."""

import http.server
import socket
import struct
import threading
import time


class Recorded:
    def __init__(self, method, target, headers, body, client_port):
        self.method = method
        self.target = target
        self.path, _, self.query = target.partition("?")
        self.headers = headers  # list of (name, value), in the order received
        self.body = body
        self.client_port = client_port
        self.arrived = time.monotonic()
        self.answered = None

    def header(self, name):
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<%s %s %dB>" % (self.method, self.target, len(self.body))


class RecordingRemote:
    def __init__(self, port=0, tls=None):
        """tls: an ssl.SSLContext (server side) to serve https instead of http."""
        self.requests = []   # answered 2xx (delivered), in order of answer
        self.arrivals = []   # every request read, in order of arrival
        self.status = 200    # answer for requests beyond `statuses`
        self.statuses = []   # answers for the next requests, consumed in order
        self.delay = 0.0     # seconds before answering
        self.hang = False    # never answer (until stop)
        self.drop = False    # close the connection without answering
        self.retry_after = None  # seconds, sent with non-2xx answers when set
        self.resets = 0          # reset (RST) the connection instead of answering, this many times
        self.keepalive_idle = None  # close a kept-alive connection idle for this many seconds
        self.active = 0
        self.peak_active = 0
        self.cond = threading.Condition()
        self._release = threading.Event()
        remote = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                self.timeout = remote.keepalive_idle  # idle keep-alive connections are closed
                super().setup()

            def _reset(self):
                # SO_LINGER with a zero timeout turns close() into a TCP reset.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True

            def _read_body(self):
                if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                    body = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return bytes(body)
                        body += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                rec = Recorded(self.command, self.path, list(self.headers.items()),
                               self._read_body(), self.client_address[1])
                with remote.cond:
                    remote.arrivals.append(rec)
                    remote.active += 1
                    remote.peak_active = max(remote.peak_active, remote.active)
                    status = remote.statuses.pop(0) if remote.statuses else remote.status
                    delay, hang, drop = remote.delay, remote.hang, remote.drop
                    reset = remote.resets > 0
                    remote.resets -= 1 if reset else 0
                    remote.cond.notify_all()
                try:
                    if hang:
                        remote._release.wait(30)
                        self.close_connection = True
                        return
                    if delay:
                        remote._release.wait(delay)
                    if drop:
                        self.close_connection = True
                        return
                    if reset:
                        self._reset()
                        return
                    body = b"" if status < 300 else b"remote says no"
                    try:
                        self.send_response(status)
                        if status >= 300 and remote.retry_after is not None:
                            self.send_header("Retry-After", str(remote.retry_after))
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return  # the client gave up first: not delivered
                    rec.answered = time.monotonic()
                    with remote.cond:
                        if status < 300:
                            remote.requests.append(rec)
                        remote.cond.notify_all()
                finally:
                    with remote.cond:
                        remote.active -= 1
                        remote.cond.notify_all()

            do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def _wait(self, what, count, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(getattr(self, what)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("waited %.1fs for %d %s at the remote; have %r"
                                         % (timeout, count, what, getattr(self, what)))
                self.cond.wait(left)
            return list(getattr(self, what))

    def wait_for(self, count, timeout=5.0):
        """Waits until `count` requests were answered 2xx (delivered); returns them."""
        return self._wait("requests", count, timeout)

    def wait_arrivals(self, count, timeout=5.0):
        """Waits until `count` requests have been read (answered or not)."""
        return self._wait("arrivals", count, timeout)
