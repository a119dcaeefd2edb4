"""Starts the real extension binary for a test and watches it, and talks raw HTTP to it.

Extension: the binary (env PLE_BINARY, default build/pyroscope-lambda-extension) started with a
minimal environment (PATH, sanitizer options, and what the test passes: never the outer
PYROSCOPE_*). Its stderr is read line by line in a thread; tests wait for a line matching a
regex with a bound (wait_for_log), never sleep and hope. stop() signals it, waits bounded, then
SIGKILLs; every process started here is killed at interpreter exit too, whatever happened.

RawClient / http_exchange / post: a raw-socket HTTP/1.x client for what ordinary clients hide:
pipelining, chunked bodies, Expect: 100-continue, HTTP/1.0, duplicate headers. Every socket
operation has a timeout."""

import atexit
import collections
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

from lambda_emu import LambdaEmulator
from remote import RecordingRemote

BINARY = os.environ.get("PLE_BINARY") or os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "pyroscope-lambda-extension"))

# Passed through to the binary when set (sanitizer builds, valgrind runs).
PASS_THROUGH = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TMPDIR")

_live = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_everything():
    with _live_lock:
        procs = list(_live)
    for ext in procs:
        ext.kill()


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            return True
    except OSError:
        return False


def free_port(host=None):
    """A TCP port that was free a moment ago (bind port 0 and close). By default free on
    127.0.0.1 and, where the host has it, on ::1 too: the relay listens on both."""
    if host is not None:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    v6 = has_ipv6_loopback()
    for _ in range(100):
        with socket.socket(socket.AF_INET) as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            if not v6:
                return port
            try:
                with socket.socket(socket.AF_INET6) as s6:
                    s6.bind(("::1", port))
                    return port
            except OSError:
                continue
    raise AssertionError("no port free on both 127.0.0.1 and ::1 after 100 tries")


class Extension:
    def __init__(self, env, binary=BINARY, prefix=None):
        """prefix: argv run in front of the binary, which it must exec (so that the process the
        harness signals is the extension itself), e.g. hostname.private_hosts_prefix()."""
        # A minimal environment: nothing of the outer PYROSCOPE_* leaks into a test.
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for k in PASS_THROUGH:
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.env.update({k: str(v) for k, v in env.items()})
        self.binary = binary
        self.prefix = list(prefix or [])
        self.proc = None
        self.lines = []   # stderr lines without "\n"; None is appended at end of output
        self.cond = threading.Condition()
        self._reader = None

    @property
    def port(self):
        return int(self.env.get("PYROSCOPE_RELAY_PORT", 4040))

    def start(self, wait_listening=True, timeout=5.0, max_fds=None):
        """Starts the binary; waits (bounded) until it logs that it listens on 127.0.0.1.
        max_fds: RLIMIT_NOFILE for the process, to make it run out of descriptors."""
        if not os.access(self.binary, os.X_OK):
            raise AssertionError("no executable extension binary at %s (set PLE_BINARY)" % self.binary)
        limit = None
        if max_fds:
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))
        self.proc = subprocess.Popen(self.prefix + [self.binary], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=limit, close_fds=True)
        with _live_lock:
            _live.add(self)
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="ext-stderr-%d" % self.proc.pid)
        self._reader.start()
        if wait_listening:
            try:
                self.wait_for_log(r'relay listening.*127\.0\.0\.1:%d\b' % self.port, timeout)
            except AssertionError:
                code = self.proc.poll()
                self.kill()
                if code is not None:
                    raise AssertionError("%s exited with code %d before listening on port %d; "
                                         "log:\n%s" % (self.binary, code, self.port, self.log()))
                raise
        return self

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.kill()

    def _read(self):
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    # -- the log --
    def log_lines(self):
        with self.cond:
            return [l for l in self.lines if l is not None]

    def log(self):
        return "\n".join(self.log_lines())

    def mark(self):
        """A position in the log, for wait_for_log(after=...)."""
        with self.cond:
            return len(self.lines)

    def wait_for_log(self, pattern, timeout=5.0, after=0, count=1):
        """Waits until `count` log lines (from position `after`) match the regex `pattern`;
        returns the last of them (a list if count > 1). Fails at the bound or at end of output."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [l for l in self.lines[after:] if l is not None and rx.search(l)]
                if len(found) >= count:
                    return found[count - 1] if count == 1 else found[:count]
                ended = self.lines and self.lines[-1] is None
                left = deadline - time.monotonic()
                if ended or left <= 0:
                    raise AssertionError("%d of %d log lines match %r (%s); log:\n%s" % (
                        len(found), count, pattern,
                        "process output ended" if ended else "%.1fs timeout" % timeout,
                        "\n".join(l for l in self.lines if l is not None)))
                self.cond.wait(left)

    # -- the process --
    def signal_term(self):
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout=5.0):
        """The exit code; raises subprocess.TimeoutExpired past the bound."""
        code = self.proc.wait(timeout)
        if self._reader:
            self._reader.join(timeout)
        return code

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signals the process, waits at most `timeout` for it to exit, SIGKILLs it past that.
        Returns its exit code (negative: killed by that signal, -9 when the bound passed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            sys.stderr.write("\nharness: extension pid %d did not exit within %.1fs of signal %d: "
                             "SIGKILL\n" % (self.proc.pid, timeout, sig))
            self.kill()
            return self.proc.returncode

    def kill(self):
        """SIGKILL if still running; idempotent; safe in cleanups and at exit."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self._reader:
            self._reader.join(2)
        if self.proc.stderr and not self._reader_alive():
            self.proc.stderr.close()
        with _live_lock:
            _live.discard(self)

    def _reader_alive(self):
        return self._reader is not None and self._reader.is_alive()


# -- raw HTTP --

class Response(collections.namedtuple("Response", "status headers body")):
    """status (int), headers ({lower-case name: last value}), body (bytes). Also: version,
    reason, header_list ([(name, value)] in order), raw (the bytes of head and body)."""


def post(path, body, headers=None, version="HTTP/1.1", host="127.0.0.1", method="POST"):
    """The bytes of one request with a Content-Length body. headers: dict or list of pairs."""
    head = "%s %s %s\r\n" % (method, path, version)
    if host is not None:
        head += "Host: %s\r\n" % host
    head += "Content-Length: %d\r\n" % len(body)
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for k, v in items:
        head += "%s: %s\r\n" % (k, v)
    return head.encode("latin-1") + b"\r\n" + body


def chunked(parts):
    """Encodes an iterable of bytes as a chunked body (terminating chunk included)."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


class RawClient:
    """One TCP connection; send raw bytes, read HTTP responses one at a time."""

    def __init__(self, port, host="127.0.0.1", family=None, timeout=5.0):
        if family is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("connection closed inside a response: %r" % self.buf[:200])
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("connection closed after %d of %d body bytes"
                                      % (len(self.buf), n))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method="POST"):
        """The next response, or None if the server closed the connection before one started."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if self.buf:
                    raise ConnectionError("connection closed inside a response head: %r"
                                          % self.buf[:200])
                return None
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        header_list = []
        for l in lines[1:]:
            k, _, v = l.partition(":")
            header_list.append((k.strip(), v.strip()))
        headers = {k.lower(): v for k, v in header_list}
        status = int(status)
        if status < 200 or status in (204, 304) or method == "HEAD":
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._line()
        elif "content-length" in headers:
            body = self._exact(int(headers["content-length"]))
        else:  # delimited by the close of the connection
            while self._fill():
                pass
            body, self.buf = self.buf, b""
        r = Response(status, headers, body)
        r.version, r.reason, r.header_list, r.raw = version, reason, header_list, head + b"\r\n\r\n" + body
        return r

    def read_responses(self, n):
        """Up to n responses; fewer if the server closes the connection first."""
        out = []
        while len(out) < n:
            r = self.read_response()
            if r is None:
                break
            out.append(r)
        return out

    def closed_by_peer(self):
        """True if the server closes the connection (EOF or reset) within the socket timeout
        with nothing more sent; False if the connection is still open then."""
        try:
            while self._fill():
                pass
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def http_exchange(port, data, host="127.0.0.1", family=socket.AF_INET, responses=1, timeout=5,
                  body_after_100=None):
    """Sends raw bytes on a new connection and reads `responses` final responses (fewer if the
    server closes first); a `100 Continue` is returned too, and answered with body_after_100 when
    given. Returns [Response(status, headers, body)]."""
    if ":" in host:
        family = socket.AF_INET6
    with RawClient(port, host, family, timeout) as c:
        c.send(data)
        out = []
        finals = 0
        while finals < responses:
            r = c.read_response()
            if r is None:
                break
            out.append(r)
            if r.status == 100:
                if body_after_100 is not None:
                    c.send(body_after_100)
                continue
            finals += 1
        return out


def push(port, body=b"x" * 2048, path="/ingest?name=app.lambda%7Bk%3Dv%7D&from=1&until=2"):
    """One upload to the relay, as a function's profiler sends it; returns the status."""
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body,
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


class LambdaCase(unittest.TestCase):
    """A recording remote and a Lambda Extensions API emulator per test (managed = True: in
    Managed Instances mode), and start() for an extension registered with it."""
    managed = False

    def setUp(self):
        self.remote = RecordingRemote().start()
        self.addCleanup(self.remote.stop)
        self.emu = LambdaEmulator(managed=self.managed)
        self.emu.__enter__()
        self.addCleanup(self.emu.stop)
        self.port = free_port()

    def start(self, wait_listening=False, **env):
        base = self.emu.env()
        base.update({"PYROSCOPE_RELAY_PORT": str(self.port),
                     "PYROSCOPE_REMOTE_ADDRESS": self.remote.url,
                     "PYROSCOPE_LOG_LEVEL": "debug"})
        base.update({k: str(v) for k, v in env.items()})
        ext = Extension(env=base)
        ext.start(wait_listening=wait_listening)
        self.addCleanup(ext.kill)
        self.emu.process = ext.proc
        return ext


class DevModeCase(unittest.TestCase):
    """A recording remote per test, and start() for a dev-mode extension pointed at it."""

    def setUp(self):
        self.remote = RecordingRemote().start()
        self.addCleanup(self.remote.stop)

    def start(self, remote_url=None, **env):
        self.port = free_port()
        base = {"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": self.port,
                "PYROSCOPE_REMOTE_ADDRESS": remote_url or self.remote.url}
        base.update(env)
        ext = Extension(base)
        self.addCleanup(ext.kill)  # runs before remote.stop: cleanups are LIFO
        self.ext = ext.start()
        return ext
