"""A recording remote: the Pyroscope server the extension relays to, on 127.0.0.1.

A threaded HTTP/1.1 server with keep-alive. It records every request it reads (method, raw
request target, headers in order with duplicates, de-chunked body, the client's (ip, port) of
the TCP connection to show connection reuse, arrival and answer times) and tracks how many
requests are being handled at once (current and peak). Standard library only.

Its behaviour can be changed while it runs, from the test:
  remote.respond(503, count=2)   the next 2 requests get 503, then the default again
  remote.respond(500)            every request gets 500 from now on
  remote.set_delay(0.5)          answer each request 0.5 s after reading it
  remote.set_hang()              hold every answer until remote.release() (or stop())
  remote.release()               answer the held requests now, and stop holding new ones
  remote.set_drop()              close the connection without answering
  remote.resets = N              reset (RST) the connection instead of answering, N times
  remote.retry_after = S         send Retry-After: S with non-2xx answers
  remote.keepalive_idle = S      close a kept-alive connection idle for S seconds
The attributes behind these (status, statuses, delay, hang, drop) may also be set directly.

Waiting is done on a condition variable, never on sleeps:
  wait_for(n, timeout)       the first n requests answered 2xx (delivered), in answer order
  wait_arrivals(n, timeout)  the first n requests read (answered or not), in arrival order
  wait_idle(timeout)         until no request is being handled
Each raises AssertionError saying what did arrive when the bound passes.

stop() shuts everything down, held and idle kept-alive connections included, and joins the
handler threads (bounded). The remote is a context manager."""

import http.server
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

HANG_LIMIT = 60.0  # a held answer is given up (connection closed) after this, whatever happens


class Recorded:
    """One request as the remote read it."""

    def __init__(self, method, target, version, headers, body, client, seq, conn_seq):
        self.method = method
        self.target = target            # raw request target, as on the request line
        self.path, _, self.query = target.partition("?")
        self.version = version          # "HTTP/1.1"
        self.headers = headers          # list of (name, value), in order, duplicates kept
        self.body = body                # bytes, de-chunked
        self.client = client            # (ip, port) of the TCP connection it came on
        self.client_port = client[1]
        self.seq = seq                  # 0-based order of arrival at this remote
        self.conn_seq = conn_seq        # 0-based order on its TCP connection (>0: reused)
        self.arrived = time.monotonic()  # when the whole request had been read
        self.answered = None            # when the answer began to be written (None: not answered)
        self.status = None              # the status answered (None: not answered)

    def header(self, name):
        """The first value of header `name` (case-insensitive), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    @property
    def params(self):
        """The query decoded: {name: [values]} (blank values kept)."""
        return urllib.parse.parse_qs(self.query, keep_blank_values=True)

    def __repr__(self):
        return "<%s %s %dB from %s:%d status=%s>" % (self.method, self.target, len(self.body),
                                                       self.client[0], self.client[1], self.status)


class RecordingRemote:
    def __init__(self, port=0, tls=None, host="127.0.0.1"):
        """tls: an ssl.SSLContext (server side) to serve https instead of http."""
        self.requests = []   # answered 2xx (delivered), in order of answer
        self.arrivals = []   # every request read, in order of arrival
        self.status = 200    # answer for requests beyond `statuses`
        self.statuses = []   # answers for the next requests, consumed in order
        self.delay = 0.0     # seconds before answering
        self.hang = False    # hold answers until release() or stop()
        self.drop = False    # close the connection without answering
        self.retry_after = None  # seconds, sent with non-2xx answers when set
        self.resets = 0          # reset (RST) the connection instead of answering, this many times
        self.keepalive_idle = None  # close a kept-alive connection idle for this many seconds
        self.close_each = False     # answer with Connection: close: one request per connection
        self.active = 0          # requests being handled now (read, not yet answered)
        self.peak_active = 0     # the most ever handled at once
        self.connections = []    # (ip, port) of every TCP connection accepted, in order
        self.cond = threading.Condition()
        self._release = threading.Event()   # the current generation of held answers
        self._stopping = threading.Event()
        self._socks = set()
        self._threads = set()
        remote = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                self.timeout = remote.keepalive_idle  # idle keep-alive connections are closed
                super().setup()
                self._conn_seq = 0
                with remote.cond:
                    remote._socks.add(self.connection)
                    remote._threads.add(threading.current_thread())
                    remote.connections.append(tuple(self.client_address[:2]))
                    remote.cond.notify_all()
                    if remote._stopping.is_set():  # accepted while stop() ran: close at once
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass

            def finish(self):
                try:
                    super().finish()
                except OSError:
                    pass
                with remote.cond:
                    remote._socks.discard(self.connection)
                    remote._threads.discard(threading.current_thread())

            def _reset(self):
                # SO_LINGER with a zero timeout turns close() into a TCP reset.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True

            def _read_body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = bytearray()
                    while True:
                        line = self.rfile.readline(65537)
                        if not line:
                            raise ConnectionError("connection closed inside a chunked body")
                        size = int(line.split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return bytes(body)
                        body += self.rfile.read(size)
                        self.rfile.readline(65537)
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                words = self.requestline.split()
                target = words[1] if len(words) > 1 else self.path  # raw, unlike self.path
                body = self._read_body()
                with remote.cond:
                    rec = Recorded(self.command, target, self.request_version,
                                   list(self.headers.items()), body,
                                   tuple(self.client_address[:2]), len(remote.arrivals),
                                   self._conn_seq)
                    self._conn_seq += 1
                    remote.arrivals.append(rec)
                    remote.active += 1
                    remote.peak_active = max(remote.peak_active, remote.active)
                    status = remote.statuses.pop(0) if remote.statuses else remote.status
                    delay, hang, drop = remote.delay, remote.hang, remote.drop
                    close_each = remote.close_each
                    release = remote._release
                    reset = remote.resets > 0
                    remote.resets -= 1 if reset else 0
                    remote.cond.notify_all()
                try:
                    if hang:
                        release.wait(HANG_LIMIT)
                        if remote._stopping.is_set() or not release.is_set():
                            self.close_connection = True
                            return
                    if delay and remote._stopping.wait(delay):
                        self.close_connection = True
                        return
                    if drop:
                        self.close_connection = True
                        return
                    if reset:
                        self._reset()
                        return
                    body = b"" if status < 300 else b"remote says no"
                    # Recorded before the answer leaves: once it is written, the extension may act
                    # on it (exit, poll /event/next) before this thread runs again, so a test that
                    # sees the extension act must already see the record. A write that fails
                    # takes the record back: the client gave up first, nothing was delivered.
                    with remote.cond:
                        rec.answered = time.monotonic()
                        rec.status = status
                        if status < 300:
                            remote.requests.append(rec)
                        remote.cond.notify_all()
                    try:
                        self.send_response(status)
                        if status >= 300 and remote.retry_after is not None:
                            self.send_header("Retry-After", str(remote.retry_after))
                        self.send_header("Content-Length", str(len(body)))
                        if close_each:
                            self.send_header("Connection", "close")
                            self.close_connection = True
                        self.end_headers()
                        if self.command != "HEAD":
                            self.wfile.write(body)
                        self.wfile.flush()
                    except OSError:
                        self.close_connection = True
                        with remote.cond:  # the client gave up first: not delivered
                            rec.answered = None
                            if status < 300:
                                remote.requests.remove(rec)
                            remote.cond.notify_all()
                        return
                finally:
                    with remote.cond:
                        remote.active -= 1
                        remote.cond.notify_all()

            def __getattr__(self, name):
                # Every method is recorded: do_POST, do_GET, do_PURGE, ...
                if name.startswith("do_"):
                    return self._handle
                raise AttributeError(name)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                err = sys.exc_info()[1]
                if isinstance(err, (OSError, ssl.SSLError, ValueError)) or remote._stopping.is_set():
                    return  # peers that go away are part of the tests, not errors of the remote
                super().handle_error(request, client_address)

        self.server = Server((host, port), Handler)
        scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.port = self.server.server_address[1]
        self.url = "%s://%s:%d" % (scheme, host, self.port)
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True,
                                        name="remote-%d" % self.port)
        self._started = False
        self._stopped = False

    # -- life --
    def start(self):
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop(self, timeout=5.0):
        """Stops accepting, frees held answers, closes every connection, joins the handlers."""
        if self._stopped:
            return
        self._stopped = True
        with self.cond:
            self._stopping.set()
            self._release.set()
        if self._started:
            self.server.shutdown()  # no more accepts once this returns
        self.server.server_close()
        with self.cond:
            socks, threads = list(self._socks), list(self._threads)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes handlers blocked reading a kept-alive socket
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self.cond:
            self.cond.notify_all()

    # -- behaviour --
    def respond(self, status, count=None):
        """Answers `status` to the next `count` requests, or to every request if count is None."""
        with self.cond:
            if count is None:
                self.status, self.statuses = status, []
            else:
                self.statuses.extend([status] * count)

    def set_delay(self, seconds):
        with self.cond:
            self.delay = seconds

    def set_hang(self, on=True):
        """Holds every answer from now on until release() or stop()."""
        with self.cond:
            self.hang = on

    def release(self):
        """Answers the held requests now and holds no more."""
        with self.cond:
            self.hang = False
            held, self._release = self._release, threading.Event()
            held.set()
            self.cond.notify_all()

    def set_drop(self, on=True):
        """Closes connections without answering from now on."""
        with self.cond:
            self.drop = on

    def reset_peak(self):
        with self.cond:
            self.peak_active = self.active

    @property
    def concurrent(self):
        return self.active

    @property
    def peak(self):
        return self.peak_active

    def client_addresses(self, recs=None):
        """The distinct (ip, port) the given (default: all) requests came from."""
        with self.cond:
            return {r.client for r in (self.arrivals if recs is None else recs)}

    # -- waiting --
    def _wait(self, what, count, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(getattr(self, what)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "waited %.1fs for %d %s at the remote; have %d %s: %r; all arrivals: %r"
                        % (timeout, count, what, len(getattr(self, what)), what,
                           getattr(self, what), self.arrivals))
                self.cond.wait(left)
            return list(getattr(self, what))

    def wait_for(self, count, timeout=5.0):
        """Waits until `count` requests were answered 2xx (delivered); returns all delivered."""
        return self._wait("requests", count, timeout)

    def wait_arrivals(self, count, timeout=5.0):
        """Waits until `count` requests have been read (answered or not); returns all read."""
        return self._wait("arrivals", count, timeout)

    def wait_active(self, count, timeout=5.0):
        """Waits until at least `count` requests are being handled at once."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.active < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("waited %.1fs for %d requests handled at once; have %d"
                                         % (timeout, count, self.active))
                self.cond.wait(left)

    def wait_idle(self, timeout=5.0):
        """Waits until no request is being handled."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.active:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("remote still handling %d requests after %.1fs"
                                         % (self.active, timeout))
                self.cond.wait(left)
