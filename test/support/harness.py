"""Starts the real extension binary for a test and watches it: its log lines (stderr) are read in
a thread and can be waited on with a regex and a bound; it is always killed at the end."""

import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time

BINARY = os.environ.get("PLE_BINARY") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "pyroscope-lambda-extension")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            return True
    except OSError:
        return False


class Extension:
    def __init__(self, env, binary=BINARY):
        # A minimal environment: nothing of the outer PYROSCOPE_* leaks into a test.
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.env.update({k: str(v) for k, v in env.items()})
        self.binary = binary
        self.proc = None
        self.lines = []
        self.cond = threading.Condition()
        self._reader = None

    @property
    def port(self):
        return int(self.env.get("PYROSCOPE_RELAY_PORT", 4040))

    def start(self, wait_listening=True, timeout=5.0, max_fds=None):
        """max_fds: RLIMIT_NOFILE for the process, to make it run out of descriptors."""
        limit = None
        if max_fds:
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))
        self.proc = subprocess.Popen([self.binary], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=limit)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait_listening:
            self.wait_for_log(r'relay listening.*127\.0\.0\.1:%d\b' % self.port,
                              timeout)
        return self

    def _read(self):
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    def log(self):
        with self.cond:
            return "\n".join(l for l in self.lines if l is not None)

    def wait_for_log(self, pattern, timeout=5.0):
        """Returns the first log line matching pattern; fails after timeout or at end of output."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line is not None and rx.search(line):
                        return line
                ended = self.lines and self.lines[-1] is None
                left = deadline - time.monotonic()
                if ended or left <= 0:
                    raise AssertionError("no log line matches %r (%s); log:\n%s" % (
                        pattern, "process output ended" if ended else "timeout", self.log()))
                self.cond.wait(left)

    def signal_term(self):
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout=5.0):
        code = self.proc.wait(timeout)
        if self._reader:
            self._reader.join(timeout)
        return code

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signals the process and returns its exit code; SIGKILL if it outlives the bound."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("extension did not exit within %.1fs of signal %d" % (timeout, sig))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and self.proc.stderr:
            if self._reader:
                self._reader.join(2)
            self.proc.stderr.close()
