#!/usr/bin/env python3
"""The benchmark of the extension (issue 5). It reports; it never fails on a number.

    python3 test/bench/bench.py            full run, about 3-4 minutes
    python3 test/bench/bench.py --quick    short run, under a minute
    python3 test/bench/bench.py --profile  where the CPU goes per relayed upload (callgrind,
                                           strace -c, perf record), about 1-2 minutes
    python3 test/bench/bench.py --compare A.json B.json
    PLE_BINARY=/path/to/binary python3 test/bench/bench.py   benchmark another binary

What it measures, each beside a reference measured in the same run:
  relay     wrk POSTs realistic uploads (2 KiB folded text, 16 KiB multipart pprof, 256 KiB
            multipart JFR-like) at 1, 16 and 64 connections to the extension (dev mode), which
            relays them to nginx answering 200 (the sink counts deliveries in its access log);
            the same wrk load against nginx directly is the ceiling.
  workers   the 16 KiB / 16 connections row again with PYROSCOPE_NUM_WORKERS = 5, 16, 32.
  coldstart exec -> listening, exec -> the register request's first bytes, for the extension
            and for trivial.c (bind + listen + connect + write, nothing else).
  memory    idle RSS and threads after registering with the Extensions API emulator, and RSS
            after 10,000, 20,000 and 30,000 relayed uploads.
  flush     PYROSCOPE_FLUSH_ON_INVOKE=true: from the remote answering the last upload to the next
            /event/next arriving at the emulator.

It prints one table and writes the figures as JSON to build/bench/results-<time>.json and
build/bench/latest.json. It installs nothing itself except through test/install-deps.sh --bench
when wrk or nginx is missing, builds the extension if needed (not with PLE_BINARY), uses loopback
addresses only, bounds every wait, and stops every process it started, on failure and on Ctrl-C
too."""

import argparse
import atexit
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))

import pprof  # noqa: E402  (test/support)

BUILD = os.path.join(ROOT, "build")
OUT = os.path.join(BUILD, "bench")
DEFAULT_BINARY = os.path.join(BUILD, "pyroscope-lambda-extension")
LUA = os.path.join(HERE, "post.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")
API = "/2020-01-01/extension"

# ---------------------------------------------------------------- processes we start

_procs = []
_procs_lock = threading.Lock()


def spawn(argv, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(argv, **kw)
    with _procs_lock:
        _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=5.0):
    """Signals p, waits at most `timeout`, SIGKILLs past it. Returns the exit code."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    with _procs_lock:
        if p in _procs:
            _procs.remove(p)
    return p.returncode


@atexit.register
def _stop_everything():
    with _procs_lock:
        procs = list(_procs)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # atexit then stops what we started


signal.signal(signal.SIGTERM, _on_sigterm)
signal.signal(signal.SIGHUP, _on_sigterm)

# ---------------------------------------------------------------- small helpers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=5.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d" % (proc.returncode, port))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("nothing listening on 127.0.0.1:%d after %.1fs" % (port, timeout))


def proc_cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / CLK_TCK  # utime, stime


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Private_Dirty":
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    try:
        with open("/proc/%d/maps" % pid) as f:
            out["shared_objects"] = len({l.split()[-1] for l in f if ".so" in l.split()[-1]})
    except OSError:
        pass
    return out  # kB, except Threads and shared_objects


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def spread(samples_s):
    ms = [x * 1000 for x in samples_s]
    return {"median_ms": round(statistics.median(ms), 3), "p10_ms": round(pct(ms, 10), 3),
            "p90_ms": round(pct(ms, 90), 3), "min_ms": round(min(ms), 3),
            "max_ms": round(max(ms), 3), "runs": len(ms)}


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


SUMMARY_RX = re.compile(r'msg="?shutdown summary"?.*?accepted=(\d+) relayed=(\d+) failed=(\d+) '
                        r'rejected=(\d+) pending=(\d+)')


def parse_summary(text):
    m = None
    for m in SUMMARY_RX.finditer(text):
        pass
    if not m:
        return None
    return dict(zip(("accepted", "relayed", "failed", "rejected", "pending"),
                    (int(x) for x in m.groups())))

# ---------------------------------------------------------------- preparing


def ensure_tools(need_profile=False):
    tools = ["wrk", "nginx", "cc"] + (["valgrind", "strace", "perf"] if need_profile else [])
    missing = [t for t in tools if not shutil.which(t) and not os.path.exists("/usr/sbin/" + t)]
    if missing:
        log("missing %s: running test/install-deps.sh --bench" % " ".join(missing))
        subprocess.check_call(["bash", os.path.join(ROOT, "test", "install-deps.sh"), "--bench"])


def nginx_path():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def ensure_binary():
    env_bin = os.environ.get("PLE_BINARY")
    if env_bin:
        if not os.access(env_bin, os.X_OK):
            sys.exit("PLE_BINARY=%s is not an executable file" % env_bin)
        return os.path.abspath(env_bin)
    if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
        log("configuring build/ (RelWithDebInfo)")
        subprocess.check_call(["cmake", "-S", ROOT, "-B", BUILD, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                              stdout=subprocess.DEVNULL)
    subprocess.check_call(["cmake", "--build", BUILD, "-j2", "--target", "pyroscope-lambda-extension"],
                          stdout=subprocess.DEVNULL)
    return DEFAULT_BINARY


def make_bodies(work):
    """The three uploads, written to files for post.lua: (name, path, content type, query)."""
    rng = random.Random(5)
    now = 1700000000
    bodies = []

    # 2 KiB of folded stacks, as pyroscope's Python/Ruby/eBPF clients send ("format=folded" is
    # the default text format of /ingest).
    names = ["main", "handler", "json.loads", "sql.query", "http.request", "render",
             "gc", "sort", "hashlib.sha256", "socket.recv"]
    lines = []
    while sum(len(l) for l in lines) < 2048:
        depth = rng.randint(2, 6)
        lines.append(";".join(["main"] + rng.sample(names[1:], depth - 1)) + " %d\n" % rng.randint(1, 500))
    text = "".join(lines).encode()[:2048]
    text = text[:text.rfind(b"\n") + 1]
    query = ("name=bench.py.app%%7Bfunction%%3Dbench%%7D&from=%d&until=%d&format=folded"
             "&spyName=pyspy&sampleRate=100" % (now, now + 10))
    bodies.append(("2 KiB folded", text, "binary/octet-stream+lines", query))

    # 16 KiB multipart pprof, as pyroscope-go sends (a real gzipped profile plus the sample type
    # config), grown until the body is 16 KiB.
    n = 40
    while True:
        prof = pprof.random_cpu_profile(rng, n_stacks=n)
        ctype, body = pprof.multipart([("profile", "profile.pprof", prof),
                                       ("sample_type_config", "sample_type_config.json",
                                        b'{"cpu":{"units":"samples","sampled":true}}')],
                                      boundary="b0undary16k")
        if len(body) >= 16 * 1024:
            break
        n = int(n * 1.3) + 10
    query = ("name=bench.go.app%%7Bfunction%%3Dbench%%7D&from=%d&until=%d&spyName=gospy"
             "&sampleRate=100&units=&aggregationType=" % (now, now + 10))
    bodies.append(("16 KiB pprof", body, ctype, query))

    # 256 KiB multipart JFR-like, as pyroscope-java sends (the recording is compressed binary,
    # so random bytes stand for it) plus its labels part.
    jfr = b"FLR\0\0\2\0\0" + bytes(rng.getrandbits(8) for _ in range(256 * 1024 - 600))
    ctype, body = pprof.multipart([("jfr", "jfr", jfr), ("labels", "labels", b"\x0a\x00" * 40)],
                                  boundary="b0undary256k")
    query = ("name=bench.java.app%%7Bfunction%%3Dbench%%7D&from=%d&until=%d&format=jfr"
             "&spyName=javaspy&sampleRate=100&units=samples&aggregationType=sum" % (now, now + 10))
    bodies.append(("256 KiB JFR", body, ctype, query))

    out = []
    for name, data, ctype, q in bodies:
        path = os.path.join(work, "body-%d.bin" % len(out))
        with open(path, "wb") as f:
            f.write(data)
        out.append({"name": name, "path": path, "bytes": len(data), "content_type": ctype, "query": q})
    return out

# ---------------------------------------------------------------- the sink: nginx answering 200


class Sink:
    """nginx in one process (no daemon, no master), answering 200 to everything and writing one
    access-log line per request, which is how deliveries are counted."""

    def __init__(self, work):
        self.dir = os.path.join(work, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = os.path.join(self.dir, "access.log")
        conf = os.path.join(self.dir, "nginx.conf")
        d = self.dir
        with open(conf, "w") as f:
            f.write("""daemon off; master_process off; worker_processes 1;
error_log %(d)s/error.log; pid %(d)s/nginx.pid;
events { worker_connections 4096; }
http {
  log_format count "$status";
  access_log %(d)s/access.log count;
  client_body_temp_path %(d)s/body; proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi; uwsgi_temp_path %(d)s/uwsgi; scgi_temp_path %(d)s/scgi;
  client_max_body_size 64m; keepalive_requests 10000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:%(port)d; location / { return 200; } }
}
""" % {"d": d, "port": self.port})
        open(self.log, "w").close()
        self.proc = spawn([nginx_path(), "-e", os.path.join(d, "error.log"), "-p", d, "-c", conf],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port, 5, self.proc)
        self._offset = 0
        self.total = 0
        self.non200 = 0
        # The probe connection of wait_listening logs nothing (no request), so the count starts at 0.

    def count(self):
        with open(self.log, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        lines = data[:end].split(b"\n")[:-1]
        self.total += len(lines)
        self.non200 += sum(1 for l in lines if l != b"200")
        return self.total

    def wait_quiet(self, quiet=0.4, timeout=20.0):
        """Waits until the count has not moved for `quiet` seconds. Returns (count, time of the
        last increase, as time.monotonic)."""
        last = self.count()
        t_last = time.monotonic()
        deadline = t_last + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            n = self.count()
            now = time.monotonic()
            if n != last:
                last, t_last = n, now
            elif now - t_last >= quiet:
                break
        return last, t_last

    def close(self):
        stop(self.proc, signal.SIGQUIT, 5)

# ---------------------------------------------------------------- wrk


def run_wrk(port, body, conns, seconds, stop_after=0, until=None):
    """wrk against 127.0.0.1:port; returns the figures post.lua's done() printed, plus
    'ok' (2xx answers) and 'rps'. until: a callable polled every 50 ms; when it returns true,
    wrk is interrupted (SIGINT: it still prints its figures)."""
    env = dict(os.environ, BODY_FILE=body["path"], CONTENT_TYPE=body["content_type"],
               INGEST_QUERY=body["query"], STOP_AFTER=str(stop_after))
    threads = max(1, min(2, conns))
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % max(1, int(round(seconds))),
            "--timeout", "5s", "-s", LUA, "http://127.0.0.1:%d" % port]
    p = spawn(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if until is not None:
        deadline = time.monotonic() + seconds + 10
        while p.poll() is None and time.monotonic() < deadline:
            if until():
                p.send_signal(signal.SIGINT)
                break
            time.sleep(0.05)
    try:
        out, err = p.communicate(timeout=seconds + 15)
    except subprocess.TimeoutExpired:
        stop(p, signal.SIGKILL)
        raise RuntimeError("wrk did not finish within %ds" % (seconds + 15))
    stop(p)
    m = re.search(r"BENCH_JSON (\{.*\})", out)
    if not m:
        raise RuntimeError("wrk printed no figures:\n%s\n%s" % (out, err))
    r = json.loads(m.group(1))
    r["non2xx"] = r["status_errors"]
    r["ok"] = r["requests"] - r["status_errors"]
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["ok_rps"] = r["ok"] / (r["duration_us"] / 1e6)
    return r

# ---------------------------------------------------------------- the extension


def ext_env(port, remote, extra=None):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "PYROSCOPE_RELAY_PORT": str(port), "PYROSCOPE_REMOTE_ADDRESS": remote,
           "PYROSCOPE_LOG_LEVEL": "info"}
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


class DevExtension:
    """The extension in dev mode (no Extensions API), its stderr in a file."""

    def __init__(self, binary, work, remote, extra=None, wrapper=()):
        self.port = free_port()
        self.logpath = os.path.join(work, "ext-%d.log" % self.port)
        self._log = open(self.logpath, "wb")
        env = ext_env(self.port, remote, dict({"PYROSCOPE_DEV_MODE": "true"}, **(extra or {})))
        self.proc = spawn(list(wrapper) + [binary], env=env, stdout=subprocess.DEVNULL, stderr=self._log)
        wait_listening(self.port, 30 if wrapper else 5, self.proc)

    @property
    def pid(self):
        """The extension's pid (under strace: strace's child; valgrind runs in the same pid)."""
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        return self.proc.pid

    def stop(self, timeout=15.0):
        target = self.pid
        if target != self.proc.pid:  # signal the extension, and let strace see it exit
            try:
                os.kill(target, signal.SIGTERM)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        code = stop(self.proc, signal.SIGTERM, timeout)
        self._log.close()
        with open(self.logpath, errors="replace") as f:
            self.log = f.read()
        return code


def relay_row(binary, work, sink, body, conns, seconds, extra=None):
    ext = DevExtension(binary, work, sink.url, extra)
    try:
        base = sink.count()
        cpu0 = proc_cpu_ms(ext.pid)
        w = run_wrk(ext.port, body, conns, seconds)
        t_end = time.monotonic()
        total, t_last = sink.wait_quiet()
        cpu1 = proc_cpu_ms(ext.pid)
        st = proc_status(ext.pid)
    finally:
        code = ext.stop()
    delivered = total - base
    summary = parse_summary(ext.log)
    elapsed = w["duration_us"] / 1e6 + max(0.0, t_last - t_end)
    row = {"body": body["name"], "body_bytes": body["bytes"], "conns": conns,
           "requests": w["requests"], "rps": round(w["rps"], 1), "ok": w["ok"], "non2xx": w["non2xx"],
           "socket_errors": w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"],
           "p50_ms": w["lat_p50_us"] / 1000.0, "p99_ms": w["lat_p99_us"] / 1000.0,
           "delivered": delivered, "delivered_per_s": round(delivered / elapsed, 1),
           "drain_s": round(max(0.0, t_last - t_end), 3),
           "cpu_ms": round(cpu1 - cpu0, 1),
           "cpu_ms_per_1k": round((cpu1 - cpu0) * 1000.0 / delivered, 2) if delivered else None,
           "peak_rss_kb": st.get("VmHWM"), "rss_kb": st.get("VmRSS"), "threads": st.get("Threads"),
           "exit_code": code, "summary": summary}
    # Loss: what the extension accepted (answered 2xx) and the sink never counted. wrk's own 2xx
    # count can be a little lower than accepted: answers in flight when wrk stops are not counted.
    if summary:
        row["accepted"] = summary["accepted"]
        row["lost"] = summary["accepted"] - delivered
        row["lost_vs_wrk_2xx"] = max(0, w["ok"] - delivered)
    else:
        row["accepted"] = None
        row["lost"] = None
        row["lost_vs_wrk_2xx"] = max(0, w["ok"] - delivered)
    return row


def ceiling_row(sink, body, conns, seconds):
    base = sink.count()
    w = run_wrk(sink.port, body, conns, seconds)
    total, _ = sink.wait_quiet(quiet=0.2)
    return {"body": body["name"], "conns": conns, "rps": round(w["rps"], 1), "ok": w["ok"],
            "non2xx": w["non2xx"], "p50_ms": w["lat_p50_us"] / 1000.0,
            "p99_ms": w["lat_p99_us"] / 1000.0, "counted": total - base}

# ---------------------------------------------------------------- cold start


def build_trivial():
    os.makedirs(OUT, exist_ok=True)
    exe = os.path.join(OUT, "coldstart-trivial")
    src = os.path.join(HERE, "trivial.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.check_call(["cc", "-O2", "-o", exe, src])
    return exe


def coldstart_once(argv, what):
    """One exec. what='listening': spin connecting to the relay port (the API socket listens but
    never answers). what='register': block on the API socket until the register request's first
    bytes arrive (no spinning, so nothing competes with the starting process for a CPU).
    Seconds from just before fork+exec."""
    api = socket.socket()
    api.bind(("127.0.0.1", 0))
    api.listen(4)
    port = free_port()
    env = ext_env(port, "http://127.0.0.1:9", {"PYROSCOPE_LOG_LEVEL": "error",
                                             "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % api.getsockname()[1]})
    result = None
    t0 = time.perf_counter()
    proc = spawn(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if what == "listening":
            deadline = t0 + 5
            while time.perf_counter() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                        result = time.perf_counter() - t0
                        break
                except OSError:
                    if proc.poll() is not None:
                        break
                    # A nap between tries: a tight spin takes CPU from the starting process
                    # on a small machine (it doubled the figure on 2 busy cores). Resolution ~0.3 ms.
                    time.sleep(0.0003)
        else:
            api.settimeout(5)
            conn, _ = api.accept()
            conn.settimeout(5)
            if conn.recv(1):
                result = time.perf_counter() - t0
            conn.close()
    except OSError:
        pass
    finally:
        stop(proc, signal.SIGKILL)
        api.close()
    return result


def coldstart(binary, runs):
    trivial = build_trivial()
    progs = (("trivial C", [trivial]), ("extension", [binary]))
    samples = {(n, w): [] for n, _ in progs for w in ("listening", "register")}
    failures = 0
    for _ in range(runs):  # interleaved, so that a busy moment hits both alike
        for what in ("listening", "register"):
            for name, argv in progs:
                r = coldstart_once(argv, what)
                if r is None:
                    failures += 1
                else:
                    samples[(name, what)].append(r)
    out = {"failures": failures}
    for name, _ in progs:
        out[name] = {"exec_to_listening": spread(samples[(name, "listening")]),
                     "exec_to_register": spread(samples[(name, "register")])}
    return out

# ---------------------------------------------------------------- memory (Lambda mode)


def memory(binary, work, sink, body, batch=10000):
    from harness import Extension
    from lambda_emu import LambdaEmulator
    out = {}
    with LambdaEmulator() as emu:
        port = free_port()
        ext = Extension(ext_env(port, sink.url, {"AWS_LAMBDA_RUNTIME_API": emu.address}), binary=binary)
        try:
            ext.start(timeout=10)
            emu.process = ext.proc
            emu.wait_calls("/event/next", 1, 10)
            time.sleep(0.3)  # idle: registered, uploader started, long-polling
            out["idle"] = proc_status(ext.proc.pid)
            base = sink.count()
            for n in (1, 2, 3):
                target = base + n * batch
                # wrk until the sink has counted the batch; 503s (queue full) are simply retried
                # by wrk's next request, so the figure is "after N relayed".
                run_wrk(port, body, 16, 60, until=lambda: sink.count() >= target)
                sink.wait_quiet()
                time.sleep(0.2)
                out["after_%d" % (n * batch)] = dict(proc_status(ext.proc.pid),
                                                      relayed=sink.count() - base)
            emu.shutdown(deadline_in_ms=5000)
            ext.wait_exit(10)
        finally:
            ext.kill()
        out["summary"] = parse_summary(ext.log())
    return out

# ---------------------------------------------------------------- flush cost


class HoldRemote:
    """A minimal HTTP/1.1 remote with keep-alive that holds every answer until release(), and
    stamps time.monotonic() just before writing each answer: the last stamp is an upper bound on
    when the last upload completed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.cond = threading.Condition()
        self.released = 0     # generation
        self.arrived = 0
        self.answered = []    # monotonic stamps, just before each answer was written
        self.stopping = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        c.settimeout(30)
        try:
            while not self.stopping:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                n = int(m.group(1)) if m else 0
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[n:]
                with self.cond:
                    gen = self.released
                    self.arrived += 1
                    self.cond.notify_all()
                    while self.released == gen and not self.stopping:
                        self.cond.wait(1)
                t = time.monotonic()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                with self.cond:
                    self.answered.append(t)
                    self.cond.notify_all()
        except OSError:
            return

    def wait_arrived(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.arrived < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("remote: %d of %d uploads arrived" % (self.arrived, n))
                self.cond.wait(left)

    def release(self):
        with self.cond:
            self.released += 1
            self.cond.notify_all()

    def close(self):
        self.stopping = True
        self.release()
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def start_syscall_trace(pid, work):
    """perf trace on the extension's recvfrom (curl reading the remote's answers), connect and
    write (the next /event/next: extapi opens a connection per call). Kernel timestamps, no
    ptrace stops. None when perf trace cannot run here (not root, no tracepoints)."""
    if not shutil.which("perf"):
        return None
    path = os.path.join(work, "flush-trace.txt")
    p = spawn(["perf", "trace", "-p", str(pid), "-e", "recvfrom,connect,write", "-o", path],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attaching takes a moment; nothing says when it is done
    if p.poll() is not None:
        return None
    return p, path


TRACE_RX = re.compile(r"^\s*([\d.]+) \(\s*([\d.]+) ms\): (?:\S+ )?(\w+)\((?:fd: )?(\d*).*\)\s+= (-?\d+)")


def stop_syscall_trace(tracer):
    """The extension's own flush cost, per invoke: from the end of its last recvfrom of a
    remote's answer to its write() of the next /event/next request (seconds)."""
    if not tracer:
        return [], []
    p, path = tracer
    stop(p, signal.SIGINT, 5)
    to_connect, to_write = [], []
    last_recv, connected = None, False
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = TRACE_RX.match(line)
                if not m:
                    continue
                ts, dur, call, ret = float(m.group(1)), float(m.group(2)), m.group(3), int(m.group(5))
                if call == "recvfrom" and ret > 0:
                    last_recv, connected = ts + dur, False
                elif call == "connect" and last_recv is not None and not connected:
                    to_connect.append((ts - last_recv) / 1000.0)
                    connected = True
                elif call == "write" and connected and last_recv is not None:
                    to_write.append((ts - last_recv) / 1000.0)
                    last_recv, connected = None, False
    except OSError:
        pass
    return to_connect, to_write


def flush_cost(binary, work, invokes, per_invoke=3):
    from harness import Extension, RawClient, post
    from lambda_emu import LambdaEmulator
    remote = HoldRemote()
    samples, emu_latency, inside = [], [], ([], [])
    out = {}
    try:
        with LambdaEmulator() as emu:
            port = free_port()
            ext = Extension(ext_env(port, remote.url, {"AWS_LAMBDA_RUNTIME_API": emu.address,
                                                       "PYROSCOPE_FLUSH_ON_INVOKE": "true"}),
                            binary=binary)
            try:
                ext.start(timeout=10)
                emu.process = ext.proc
                emu.wait_calls("/event/next", 1, 10)
                body = b"x" * 2048
                sent = 0
                tracer = start_syscall_trace(ext.proc.pid, work)
                host, aport = emu.address.rsplit(":", 1)
                with RawClient(port) as client:
                    for i in range(invokes):
                        for _ in range(per_invoke):
                            client.send(post("/ingest?name=flush.app&from=1&until=2", body))
                            r = client.read_response()
                            if r is None or r.status != 200:
                                raise RuntimeError("upload refused: %r" % (r,))
                        sent += per_invoke
                        remote.wait_arrived(sent)  # all in flight, held at the remote
                        nexts = len(emu.calls_to("/event/next"))
                        emu.invoke()
                        deadline = time.monotonic() + 5
                        while emu.events and time.monotonic() < deadline:
                            time.sleep(0.002)
                        time.sleep(0.05)  # the extension has the INVOKE and is flushing
                        if len(emu.calls_to("/event/next")) != nexts:
                            raise RuntimeError("the extension polled /event/next before its uploads finished")
                        mark = len(remote.answered)
                        remote.release()
                        call = emu.wait_calls("/event/next", nexts + 1, 5)[-1]
                        with remote.cond:
                            deadline = time.monotonic() + 5
                            while len(remote.answered) < mark + per_invoke and time.monotonic() < deadline:
                                remote.cond.wait(0.1)
                            last = max(remote.answered[mark:])
                        samples.append(call.mono - last)
                        # The emulator's own latency, measured like the extension calls it
                        # (a new connection per call): from connect() here to its record.
                        n0 = len(emu.calls_to("/bench-probe"))
                        t0 = time.monotonic()
                        with socket.create_connection((host, int(aport)), 5) as s:
                            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                            s.sendall(b"POST %s/bench-probe HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 0\r\n\r\n" % API.encode())
                            probe = emu.wait_calls("/bench-probe", n0 + 1, 5)[-1]
                            emu_latency.append(probe.mono - t0)
                            s.recv(1024)
                inside = stop_syscall_trace(tracer)
                emu.shutdown(deadline_in_ms=3000)
                ext.wait_exit(10)
            finally:
                ext.kill()
            out["summary"] = parse_summary(ext.log())
    finally:
        remote.close()
    if inside[1]:
        out["inside_to_connect"] = spread(inside[0])
        out["inside_to_write"] = spread(inside[1])
    out["flush"] = spread(samples)
    out["emulator_latency"] = spread(emu_latency)
    out["uploads_per_invoke"] = per_invoke
    return out

# ---------------------------------------------------------------- the run


def host_info():
    try:
        load = os.getloadavg()
    except OSError:
        load = (0, 0, 0)
    return {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in load],
            "kernel": platform.release(), "python": platform.python_version()}


def run(args):
    ensure_tools()
    binary = ensure_binary()
    t_start = time.monotonic()
    seconds = 1 if args.quick else args.seconds
    runs = 11 if args.quick else args.runs
    res = {"time": datetime.datetime.now().isoformat(timespec="seconds"), "quick": args.quick,
           "binary": binary, "binary_bytes": os.path.getsize(binary), "seconds_per_row": seconds,
           "host_before": host_info()}
    work = tempfile.mkdtemp(prefix="ple-bench-")
    sink = None
    try:
        bodies = make_bodies(work)
        res["bodies"] = [{k: b[k] for k in ("name", "bytes", "content_type")} for b in bodies]
        log("cold start: %d runs each" % runs)
        res["coldstart"] = coldstart(binary, runs)
        sink = Sink(work)
        rows = []
        for body in bodies:
            for conns in (1, 16, 64):
                log("relay %s @ %d connections: ceiling, then relay" % (body["name"], conns))
                ceil = ceiling_row(sink, body, conns, seconds)
                relay = relay_row(binary, work, sink, body, conns, seconds)
                relay["ceiling"] = ceil
                relay["delivered_ratio"] = round(relay["delivered_per_s"] / ceil["rps"], 3) if ceil["rps"] else None
                relay["p99_ratio"] = round(relay["p99_ms"] / ceil["p99_ms"], 2) if ceil["p99_ms"] else None
                rows.append(relay)
        res["relay"] = rows
        sweep = []
        b16 = bodies[1]
        for workers in (5, 16, 32):
            log("NUM_WORKERS=%d: %s @ 16 connections" % (workers, b16["name"]))
            ceil = ceiling_row(sink, b16, 16, seconds)
            r = relay_row(binary, work, sink, b16, 16, seconds, {"PYROSCOPE_NUM_WORKERS": workers})
            sweep.append({"workers": workers, "delivered_per_s": r["delivered_per_s"],
                          "ceiling_rps": ceil["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                          "non2xx": r["non2xx"], "lost": r["lost"], "cpu_ms_per_1k": r["cpu_ms_per_1k"],
                          "cpu_ms": r["cpu_ms"], "seconds": seconds,
                          "cpu_share": round(r["cpu_ms"] / (seconds * 1000.0 + r["drain_s"] * 1000), 2)})
        res["workers"] = sweep
        batch = 2000 if args.quick else 10000
        log("memory: idle after register, then 3 x %d relayed uploads" % batch)
        res["memory"] = memory(binary, work, sink, b16, batch)
        log("flush cost: PYROSCOPE_FLUSH_ON_INVOKE=true")
        res["flush"] = flush_cost(binary, work, 11 if args.quick else 21)
    finally:
        if sink:
            sink.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    res["host_after"] = host_info()
    res["wall_s"] = round(time.monotonic() - t_start, 1)
    res["figures"] = figures(res)
    print_report(res)
    os.makedirs(OUT, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(OUT, "results-%s.json" % stamp)
    for p in (path, os.path.join(OUT, "latest.json")):
        with open(p, "w") as f:
            json.dump(res, f, indent=1)
    print("\nwritten: %s (and build/bench/latest.json)" % os.path.relpath(path, ROOT))

# ---------------------------------------------------------------- figures and the table


def slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def figures(res):
    """A flat {name: number} of everything comparable, for --compare."""
    f = {"binary_bytes": res["binary_bytes"]}
    for r in res.get("relay", []):
        k = "relay.%s.c%d." % (slug(r["body"]), r["conns"])
        for key in ("delivered_per_s", "delivered_ratio", "p50_ms", "p99_ms", "p99_ratio", "non2xx",
                    "lost", "cpu_ms_per_1k", "peak_rss_kb"):
            f[k + key] = r[key]
        f[k + "ceiling_rps"] = r["ceiling"]["rps"]
        f[k + "ceiling_p99_ms"] = r["ceiling"]["p99_ms"]
    for w in res.get("workers", []):
        f["workers.%d.delivered_per_s" % w["workers"]] = w["delivered_per_s"]
        f["workers.%d.cpu_ms_per_1k" % w["workers"]] = w["cpu_ms_per_1k"]
    cs = res.get("coldstart", {})
    for name in ("trivial C", "extension"):
        if name in cs:
            for m in ("exec_to_listening", "exec_to_register"):
                f["coldstart.%s.%s_median_ms" % (slug(name), m)] = cs[name][m]["median_ms"]
    mem = res.get("memory", {})
    for k, v in mem.items():
        if isinstance(v, dict) and "VmRSS" in v:
            f["memory.%s.rss_kb" % k] = v["VmRSS"]
            f["memory.%s.threads" % k] = v["Threads"]
    if "idle" in mem:
        f["memory.idle.private_dirty_kb"] = mem["idle"].get("Private_Dirty")
    fl = res.get("flush", {})
    if "flush" in fl:
        f["flush.median_ms"] = fl["flush"]["median_ms"]
        f["flush.p90_ms"] = fl["flush"]["p90_ms"]
        f["flush.emulator_latency_median_ms"] = fl["emulator_latency"]["median_ms"]
    if "inside_to_write" in fl:
        f["flush.inside_to_connect_median_ms"] = fl["inside_to_connect"]["median_ms"]
        f["flush.inside_to_write_median_ms"] = fl["inside_to_write"]["median_ms"]
    return f


def mb(kb):
    return "%.2f MB" % (kb / 1024.0) if kb is not None else "-"


def fmt(v, spec="%.2f"):
    return "-" if v is None else spec % v


def print_report(res):
    p = print
    hb, ha = res["host_before"], res["host_after"]
    p("\npyroscope-lambda-extension benchmark, %s%s" % (res["time"], " (--quick)" if res["quick"] else ""))
    p("binary: %s, %s bytes (%.2f MB)" % (res["binary"], format(res["binary_bytes"], ","), res["binary_bytes"] / 1e6))
    p("host: %d CPUs, load average %s before, %s after; wrk %d s per row; %.0f s in all"
      % (hb["cpus"], hb["load_avg"][0], ha["load_avg"][0], res["seconds_per_row"], res["wall_s"]))
    if hb["load_avg"][0] > 0.5 * hb["cpus"] or ha["load_avg"][0] > 0.5 * ha["cpus"]:
        p("NOTE: the host was busy (load average above half the CPUs): absolute figures are noisy; "
          "compare the ratios, measured in the same run")

    p("\nRelay throughput: wrk -> extension (dev mode) -> nginx answering 200; ceiling = the same wrk "
      "load against nginx directly")
    hdr = ("%-13s %5s | %9s %7s %7s | %9s %11s %6s %7s %7s %5s %7s %6s %9s %9s %6s"
           % ("body", "conns", "ceil r/s", "p50 ms", "p99 ms", "acc/s", "deliver/s", "ratio",
              "p50 ms", "p99 ms", "p99x", "non2xx", "lost", "cpu ms/1k", "peak RSS", "exit"))
    p(hdr)
    p("-" * len(hdr))
    for r in res["relay"]:
        c = r["ceiling"]
        acc = r["ok"] / (r["requests"] / r["rps"]) if r["requests"] else 0
        p("%-13s %5d | %9.0f %7.2f %7.2f | %9.0f %11.0f %5.0f%% %7.2f %7.2f %5s %7d %6s %9s %9s %6s"
          % (r["body"], r["conns"], c["rps"], c["p50_ms"], c["p99_ms"], acc, r["delivered_per_s"],
             100 * (r["delivered_ratio"] or 0), r["p50_ms"], r["p99_ms"], fmt(r["p99_ratio"], "%.1f"),
             r["non2xx"], fmt(r["lost"], "%d"), fmt(r["cpu_ms_per_1k"], "%.0f"), mb(r["peak_rss_kb"]),
             r["exit_code"]))
    p("acc/s: 2xx answers wrk saw per second; deliver/s: uploads counted at the sink per second; "
      "ratio = deliver/s / ceiling r/s;\np99x = relay p99 / ceiling p99; non2xx: mostly 503 + "
      "Retry-After from a full queue (by design, not loss);\nlost = accepted (shutdown summary) - "
      "delivered at the sink, must be 0.")
    for r in res["relay"]:
        s = r["summary"]
        if s is None or r["lost"] or s["failed"] or s["pending"] or r["lost_vs_wrk_2xx"]:
            p("  !! %s @ %d: summary %s, delivered %d, wrk 2xx %d" % (r["body"], r["conns"], s,
                                                                     r["delivered"], r["ok"]))

    p("\nPYROSCOPE_NUM_WORKERS sweep (16 KiB pprof @ 16 connections)")
    p("%8s %11s %10s %6s %8s %8s %7s %10s %13s" % ("workers", "deliver/s", "ceil r/s", "ratio",
                                                   "p50 ms", "p99 ms", "non2xx", "cpu ms/1k",
                                                   "ext CPU busy"))
    for w in res["workers"]:
        p("%8d %11.0f %10.0f %5.0f%% %8.2f %8.2f %7d %10s %12.0f%%"
          % (w["workers"], w["delivered_per_s"], w["ceiling_rps"], 100 * w["delivered_per_s"] / w["ceiling_rps"],
             w["p50_ms"], w["p99_ms"], w["non2xx"], fmt(w["cpu_ms_per_1k"], "%.0f"), 100 * w["cpu_share"]))
    p("ext CPU busy: the extension's CPU time / wall time; near 100%: one core is the limit, not "
      "the workers")

    cs = res["coldstart"]
    p("\nCold start (%d runs each, interleaved; ms from just before fork+exec; listening: connect tried "
      "every ~0.3 ms; register: first bytes read on a blocking socket)" % cs["extension"]["exec_to_register"]["runs"])
    p("%-11s %-34s %-34s" % ("", "exec -> listening: median (p10-p90) [min-max]",
                              "  exec -> register: median (p10-p90) [min-max]"))
    for name in ("trivial C", "extension"):
        l, g = cs[name]["exec_to_listening"], cs[name]["exec_to_register"]
        p("%-11s %7.2f (%.2f-%.2f) [%.2f-%.2f]            %7.2f (%.2f-%.2f) [%.2f-%.2f]"
          % (name, l["median_ms"], l["p10_ms"], l["p90_ms"], l["min_ms"], l["max_ms"],
             g["median_ms"], g["p10_ms"], g["p90_ms"], g["min_ms"], g["max_ms"]))
    d_reg = cs["extension"]["exec_to_register"]["median_ms"] - cs["trivial C"]["exec_to_register"]["median_ms"]
    p("extension - trivial C, exec -> register: %+.2f ms (median)%s" % (
        d_reg, "; %d runs failed" % cs["failures"] if cs["failures"] else ""))

    mem = res["memory"]
    idle = mem["idle"]
    p("\nMemory (Lambda mode, registered with the emulator; 16 KiB pprof uploads)")
    p("idle after register: RSS %s (anon %s, file %s, private dirty %s), %d thread(s), %d shared objects mapped"
      % (mb(idle["VmRSS"]), mb(idle.get("RssAnon")), mb(idle.get("RssFile")), mb(idle.get("Private_Dirty")),
         idle["Threads"], idle.get("shared_objects", 0)))
    keys = sorted((k for k in mem if k.startswith("after_")), key=lambda k: int(k.split("_")[1]))
    for k in keys:
        v = mem[k]
        p("after %6d relayed: RSS %s (peak %s), %d thread(s)" % (v["relayed"], mb(v["VmRSS"]),
                                                                mb(v["VmHWM"]), v["Threads"]))
    if len(keys) >= 2:
        g = mem[keys[-1]]["VmRSS"] - mem[keys[-2]]["VmRSS"]
        p("growth over the last batch: %+d kB (must not grow once warm)" % g)
    p("shutdown summary: %s" % mem.get("summary"))

    fl = res["flush"]
    f, e = fl["flush"], fl["emulator_latency"]
    p("\nFlush cost (PYROSCOPE_FLUSH_ON_INVOKE=true, %d invokes, %d uploads held at the remote each)"
      % (f["runs"], fl["uploads_per_invoke"]))
    p("remote's last answer -> next /event/next at the emulator: median %.3f ms (p10 %.3f, p90 %.3f, max %.3f)"
      % (f["median_ms"], f["p10_ms"], f["p90_ms"], f["max_ms"]))
    p("  this includes Python on both ends: the emulator alone (connect -> its record of a request) "
      "takes median %.3f ms (p90 %.3f)" % (e["median_ms"], e["p90_ms"]))
    if "inside_to_write" in fl:
        c, w = fl["inside_to_connect"], fl["inside_to_write"]
        p("inside the extension (perf trace, kernel timestamps): last recvfrom of an answer -> connect() "
          "to the API: median %.3f ms (p90 %.3f); -> write() of GET /event/next: median %.3f ms (p90 %.3f, max %.3f)"
          % (c["median_ms"], c["p90_ms"], w["median_ms"], w["p90_ms"], w["max_ms"]))
    else:
        p("(perf trace unavailable: no in-process figure)")

    p("\nTargets (reported, never enforced)")
    row = next((r for r in res["relay"] if r["body"].startswith("16 KiB") and r["conns"] == 16), None)
    checks = [("exec -> register within 2 ms of trivial C", "%+.2f ms" % d_reg, d_reg <= 2.0),
              ("idle RSS <= 2.5 MB (target for the static layer binary)", mb(idle["VmRSS"]),
               idle["VmRSS"] <= 2.5 * 1024)]
    if row:
        checks += [("16 KiB @ 16: delivered/s >= 40% of the ceiling", "%.0f%%" % (100 * row["delivered_ratio"]),
                    row["delivered_ratio"] >= 0.4),
                   ("16 KiB @ 16: no silent loss", "lost %s" % row["lost"], row["lost"] == 0),
                   ("16 KiB @ 16: client p99 <= 2x the ceiling's p99", "%.1fx" % row["p99_ratio"],
                    row["p99_ratio"] is not None and row["p99_ratio"] <= 2)]
    lost_all = [r["lost"] for r in res["relay"]]
    checks.append(("no silent loss in any relay row", "lost %s" % sum(x or 0 for x in lost_all),
                   all(x == 0 for x in lost_all)))
    fc = fl.get("inside_to_write", f)
    checks.append(("flush cost well under 1 ms (%s)" % ("perf trace" if "inside_to_write" in fl else "via Python"),
                   "%.3f ms" % fc["median_ms"], fc["median_ms"] < 1.0))
    for name, val, ok in checks:
        p("  [%s] %-58s %s" % ("met" if ok else "NOT met", name, val))

# ---------------------------------------------------------------- --realnet


def run_realnet(args):
    import realnet
    ensure_tools()
    binaries = []
    for b in args.bin:
        label, _, path = b.partition("=")
        if not path or not os.access(path, os.X_OK):
            sys.exit("--bin %s: expected LABEL=PATH to an executable" % b)
        binaries.append((label, os.path.abspath(path)))
    if not binaries:
        binaries = [("extension", ensure_binary())]
    rtts = [int(x) for x in args.rtt.split(",") if x]
    if args.proxy == "c":
        from delay_proxy import c_proxy_binary
        if not c_proxy_binary():
            ensure_binary()  # the build of build/ makes build/test/ple-delay-proxy too
    res = realnet.run(binaries, rtts, args.reps, args.keep, args.small_ca, args.proxy)
    res["time"] = datetime.datetime.now().isoformat(timespec="seconds")
    res["host"] = host_info()
    res["binary_bytes"] = {label: os.path.getsize(path) for label, path in binaries}
    realnet.print_report(res)
    os.makedirs(OUT, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(OUT, "realnet-%s.json" % stamp)
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print("\nwritten: %s" % os.path.relpath(path, ROOT))

# ---------------------------------------------------------------- --compare


def compare(a_path, b_path):
    with open(a_path) as f:
        a = json.load(f)
    with open(b_path) as f:
        b = json.load(f)
    fa, fb = a.get("figures") or figures(a), b.get("figures") or figures(b)
    print("A: %s  %s (%s bytes)" % (a_path, a.get("binary"), a.get("binary_bytes")))
    print("B: %s  %s (%s bytes)" % (b_path, b.get("binary"), b.get("binary_bytes")))
    print("%-52s %14s %14s %8s" % ("figure", "A", "B", "B/A"))
    for k in sorted(set(fa) | set(fb)):
        va, vb = fa.get(k), fb.get(k)
        ratio = "%.2f" % (vb / va) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va else ""
        print("%-52s %14s %14s %8s" % (k, "-" if va is None else va, "-" if vb is None else vb, ratio))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    ap.add_argument("--seconds", type=int, default=5, help="wrk seconds per row (full run)")
    ap.add_argument("--runs", type=int, default=21, help="cold-start runs per program (full run)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"))
    ap.add_argument("--profile", action="store_true",
                    help="profile the relay under a fixed load (callgrind, strace -c, perf)")
    ap.add_argument("--realnet", action="store_true",
                    help="the real-network section only: HTTPS through a delay proxy (realnet.py)")
    ap.add_argument("--rtt", default="40,80", help="--realnet: RTTs in ms, comma-separated; 0 "
                    "measures what the setup itself takes (client, proxy, nginx), in ms")
    ap.add_argument("--reps", type=int, default=5, help="--realnet: repetitions per scenario")
    ap.add_argument("--small-ca", action="store_true",
                    help="--realnet: SSL_CERT_FILE holds the test CA only, not the system's bundle too")
    ap.add_argument("--proxy", choices=("c", "asyncio"), default="c",
                    help="--realnet: the delay proxy (default c: ple-delay-proxy, which adds no "
                         "time of its own; asyncio adds a few ms per exchange)")
    ap.add_argument("--bin", action="append", default=[], metavar="LABEL=PATH",
                    help="--realnet: a binary to measure (repeatable; default: PLE_BINARY or build/)")
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    if args.realnet:
        run_realnet(args)
        return
    if args.profile:
        import profile_relay
        ensure_tools(need_profile=True)
        profile_relay.main(ensure_binary(), args)
        return
    run(args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
