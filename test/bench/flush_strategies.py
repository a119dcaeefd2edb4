#!/usr/bin/env python3
"""Measures PYROSCOPE_FLUSH_STRATEGY (end, next-invoke, auto) at two invoke rates against a
remote that answers in 40 ms, with the sandbox frozen between invokes as Lambda does.

The remote is https behind a TCP proxy that delays each direction by 20 ms (a 40 ms round trip,
so a request on a warm connection is answered in 40 ms), and it closes connections idle for 3 s,
as real servers and NATs close idle ones: at the slow rate every upload needs a new TCP and TLS
handshake, which a frozen extension cannot complete.

Per invoke, the function's handler works 20 ms and pushes one 16 KiB upload as it returns (the
worst case: a profiler that uploads at every invoke). The emulator marks the runtime done when the
handler returns, then (Telemetry API) delivers platform.runtimeDone 25 ms later at the earliest.
The invoke ends when the extension polls /event/next; then the extension is SIGSTOPped until the
next invoke (SIGCONT), as Lambda freezes the sandbox.

  post-runtime ms  = the extension's /event/next - the runtime's end (Lambda's
                     PostRuntimeExtensionsDuration, billed)
  delivery wait ms = the remote's answer - the push (how long the profile waits to be stored)

Loopback only; standard library only; stops every process it starts.
  python3 test/bench/flush_strategies.py [--invokes-fast N] [--invokes-slow N] [--slow S]
"""
import argparse
import os
import shutil
import signal
import socket
import ssl
import tempfile
import statistics
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

from harness import Extension, free_port  # noqa: E402
from lambda_emu import LambdaEmulator  # noqa: E402
from remote import RecordingRemote  # noqa: E402
from tlsca import make_ca_and_cert  # noqa: E402


class DelayProxy:
    """127.0.0.1:port -> target, each direction's bytes held `one_way` seconds (order kept)."""

    def __init__(self, target_port, one_way=0.02):
        self.target_port = target_port
        self.one_way = one_way
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.stopping = False
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks += [c, u]
            self._pipe(c, u)
            self._pipe(u, c)

    def _pipe(self, src, dst):
        q = []
        cond = threading.Condition()

        def reader():
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                with cond:
                    q.append((time.monotonic() + self.one_way, data))
                    cond.notify()
                if not data:
                    return

        def writer():
            while True:
                with cond:
                    while not q:
                        cond.wait()
                    due, data = q.pop(0)
                left = due - time.monotonic()
                if left > 0:
                    time.sleep(left)
                try:
                    if not data:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()

    def stop(self):
        self.stopping = True
        self.lsock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass

BODY = b"p" * (16 * 1024)


def push(port, seq):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/ingest?name=bench%%7Bseq%%3D%d%%7D&from=1&until=2" % (port, seq),
        data=BODY, headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()
    return time.monotonic()


def run(strategy, interval, invokes, ca_dir, handler_ms=20):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ca_dir + "/srv.pem", ca_dir + "/srv.key")
    remote = RecordingRemote(tls=ctx).start()
    remote.keepalive_idle = 3.0
    proxy = DelayProxy(int(remote.url.rsplit(":", 1)[1]))
    emu = LambdaEmulator().__enter__()
    port = free_port()
    env = {"AWS_LAMBDA_RUNTIME_API": emu.address, "PYROSCOPE_RELAY_PORT": port,
           "PYROSCOPE_REMOTE_ADDRESS": "https://127.0.0.1:%d" % proxy.port,
           "SSL_CERT_FILE": ca_dir + "/ca.pem", "PYROSCOPE_FLUSH_ON_INVOKE": "true",
           "PYROSCOPE_FLUSH_STRATEGY": strategy, "PYROSCOPE_LOG_LEVEL": "debug"}
    ext = Extension(env=env)
    pushed = {}
    try:
        ext.start(wait_listening=False)
        emu.process = ext.proc
        emu.wait_calls("/event/next", 1)
        ext.wait_for_log(r'subscribed to the Telemetry API|subscription failed')
        invs = []
        for seq in range(1, invokes + 1):
            t0 = time.monotonic()

            def handler(seq=seq):
                time.sleep(handler_ms / 1000.0)
                pushed[seq] = push(port, seq)

            ev = emu.invoke(timeout_ms=10000, handler=handler)
            inv = ev["invocation"]
            invs.append(inv)
            if not inv.ended.wait(15):
                raise AssertionError("invoke %d did not end" % seq)
            while inv.runtime_done is None:
                time.sleep(0.001)
            os.kill(ext.proc.pid, signal.SIGSTOP)  # Lambda freezes the sandbox
            left = interval - (time.monotonic() - t0)
            if left > 0:
                time.sleep(left)
            os.kill(ext.proc.pid, signal.SIGCONT)
        emu.shutdown()
        ext.wait_exit(10)
        remote.wait_for(invokes, timeout=10)
        answered = {}
        for r in remote.requests:
            seq = int(r.params["name"][0].split("seq=")[1].split(",")[0].rstrip("}"))
            answered[seq] = r.answered
        post = [inv.post_runtime_ms for inv in invs]
        wait = [(answered[s] - pushed[s]) * 1000 for s in sorted(pushed)]
        switches = len([l for l in ext.log_lines() if "flush strategy auto: switching" in l])
        summary = [l for l in ext.log_lines() if "shutdown summary" in l]
        return post, wait, switches, summary[0] if summary else ""
    finally:
        try:
            os.kill(ext.proc.pid, signal.SIGCONT)
        except (ProcessLookupError, AttributeError, TypeError):
            pass
        ext.kill()
        emu.stop()
        proxy.stop()
        remote.stop()


def fmt(xs):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return "%7.1f %7.1f %7.1f %8.1f" % (statistics.mean(xs), statistics.median(xs), p90, sum(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fast", type=float, default=0.1, help="seconds between invokes (fast)")
    ap.add_argument("--slow", type=float, default=15.0, help="seconds between invokes (slow)")
    ap.add_argument("--invokes-fast", type=int, default=40)
    ap.add_argument("--invokes-slow", type=int, default=5)
    args = ap.parse_args()
    ca_dir = tempfile.mkdtemp()
    make_ca_and_cert(ca_dir, "127.0.0.1", "IP:127.0.0.1")
    print("https remote, 40 ms round trip, idle connections closed after 3 s; handler 20 ms then "
          "one 16 KiB upload per invoke; frozen between invokes")
    print("%-12s %8s %6s | %-34s | %-34s | %s" % (
        "strategy", "interval", "n", "post-runtime ms: mean median p90 sum",
        "delivery wait ms: mean median p90 sum", "auto switches"))
    for interval, n in ((args.fast, args.invokes_fast), (args.slow, args.invokes_slow)):
        for strategy in ("end", "next-invoke", "auto"):
            post, wait, switches, _ = run(strategy, interval, n, ca_dir)
            print("%-12s %7.1fs %6d | %s | %s | %d" % (strategy, interval, n, fmt(post),
                                                       fmt(wait), switches), flush=True)
    shutil.rmtree(ca_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
