"""The real-network section of the benchmark (bench.py --realnet): what a user waits for when the
remote is tens of milliseconds away over HTTPS, and most of all right after a thaw.

    extension (dev mode) --https--> DelayProxy (each direction delayed by RTT/2) --> nginx sink

The delay proxy is ple-delay-proxy (test/support/delay_proxy.c) unless --proxy asyncio asks for
the Python one, which adds a few milliseconds per exchange of its own.

The sink offers TLS 1.2 and 1.3 with session tickets and a session cache, HTTP/2 and HTTP/1.1
(ALPN), and keepalive_timeout 2s, and logs every request with its arrival time, TLS version,
whether the session was resumed, the HTTP version and the connection number. The proxy delays
every chunk by RTT/2 and, because the kernel completes the client's TCP handshake locally, holds a
new connection's first client bytes one RTT more: the round trip of the SYN that a real network
would charge, counted from when they were written, so that a client's work between connect and
first write (making its TLS context, parsing CA certificates) is charged as a real network would. Uploads are 16 KiB multipart pprof; each carries a sequence number in its query so
that the sink's log proves each was delivered once.

Scenarios, per binary and RTT, each repeated (median reported), a fresh extension per repetition:
  first    the first upload after start (DNS, TCP, TLS, request), posted once the extension's
           start-up work is done (wait_started), as in Lambda, where INIT ends before any invoke
  warm     one upload 0.3 s later, on the kept-alive connection
  idle1    one upload after 3 s idle (the sink has closed the connection: a reconnect, resumed)
  idle5    5 uploads at once after 3 s idle, until the last one is delivered
  freeze5  5 uploads at once right after SIGCONT, the extension having been SIGSTOPped for 3 s
           (longer than the keep-alive: a Lambda freeze)
Figures: ms from the upload's POST to the extension to its arrival at the sink, and the same in
RTTs; the extension's CPU for the first upload minus a warm one (the handshake); TLS version,
resumption, HTTP version and connections opened, from the sink. The physical floor: a plain
Python client doing TCP + TLS 1.3 + one request through the same proxy, in the same run.

The remote is named by host name (localhost, resolved by the extension) and verified against a
bundle of the system's CA certificates plus the test CA (SSL_CERT_FILE), so that loading a real
bundle is part of the cost, as it is in Lambda."""

import collections
import http.client
import os
import shutil
import signal
import socket
import ssl
import statistics
import time

from bench import DevExtension, log, make_bodies, parse_summary, spawn
from delay_proxy import DelayProxy
from nginx_tls import NginxTlsSink
from tlsca import make_ca_and_cert

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
FREEZE_S = 3.0
KEEPALIVE_S = 2
BURST = 5


def task_cpu_ns(pid):
    """CPU time of every thread of pid, in ns (schedstat: ns resolution, unlike /proc/PID/stat)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return total


def wait_started(pid, quiet_s=0.02, bound_s=2.0):
    """Until the extension has finished starting: its CPU time stood still for quiet_s (bounded).
    In Lambda no upload can come before INIT has ended, and what the extension does once
    registered (parsing the CA bundle: 3 ms with wolfSSL, 25-45 ms with OpenSSL 3) overlaps the
    runtime's own init; the first upload is posted after it, as it would be there. Returns the
    ms waited."""
    t0 = time.monotonic()
    last, still_since = task_cpu_ns(pid), t0
    while time.monotonic() - t0 < bound_s:
        time.sleep(0.005)
        now, cpu = time.monotonic(), task_cpu_ns(pid)
        if cpu != last:
            last, still_since = cpu, now
        elif now - still_since >= quiet_s:
            break
    return (time.monotonic() - t0) * 1000.0


class Uploader:
    """Posts the 16 KiB pprof upload to the extension, each with the next sequence number."""

    def __init__(self, body):
        with open(body["path"], "rb") as f:
            self.data = f.read()
        self.ctype = body["content_type"]
        self.query = body["query"]
        self.seq = 0
        self.sent = []

    def post(self, port, n=1):
        """n uploads at once, one connection each, opened first so that the posts leave together.
        Returns (time.time() just before the first is sent, their sequence numbers)."""
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(n)]
        for c in conns:
            c.connect()
        seqs = []
        t0 = time.time()
        for c in conns:
            self.seq += 1
            seqs.append(self.seq)
            c.request("POST", "/ingest?%s&seq=%d" % (self.query, self.seq), self.data,
                      {"Content-Type": self.ctype})
        for c in conns:
            resp = c.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError("the extension answered %d to an upload" % resp.status)
            c.close()
        self.sent += seqs
        return t0, seqs


def scenario_row(name, t0, recs, rtt_ms, cpu_ms=None):
    last = max(r["msec"] for r in recs)
    ms = (last - t0) * 1000.0
    return {"scenario": name, "ms": ms, "rtt": ms / rtt_ms if rtt_ms else None,
            "tls": sorted({r["tls"] for r in recs}), "resumed": sum(r["reused"] == "r" for r in recs),
            "http": sorted({r["proto"] for r in recs}), "connections": len({r["conn"] for r in recs}),
            "uploads": len(recs), "cpu_ms": cpu_ms}


def one_repetition(binary, work, sink, proxy, up, ca_bundle, rtt_ms):
    # Each figure is one POST -> arrival interval on one clock (time.time() and nginx's $msec,
    # which has millisecond resolution).
    ext = DevExtension(binary, work, "https://localhost:%d" % proxy.port,
                       {"SSL_CERT_FILE": ca_bundle,
                        "PYROSCOPE_LOG_LEVEL": os.environ.get("PLE_BENCH_LOG_LEVEL", "info")})
    rows = []
    settle = rtt_ms / 1000.0 + 0.03

    def timed(name):
        """One upload, its row with the extension's CPU for the whole exchange (the answer
        travels back for `settle` after the arrival)."""
        c0 = task_cpu_ns(ext.pid)
        t0, seqs = up.post(ext.port)
        recs = sink.wait_seqs(seqs)
        time.sleep(settle)
        return scenario_row(name, t0, recs, rtt_ms, (task_cpu_ns(ext.pid) - c0) / 1e6)

    try:
        pid = ext.pid
        wait_started(pid)
        first = timed("first")
        time.sleep(0.3)
        warm = timed("warm")
        first["handshake_cpu_ms"] = first["cpu_ms"] - warm["cpu_ms"]
        rows += [first, warm]

        time.sleep(FREEZE_S)
        idle1 = timed("idle1")
        idle1["handshake_cpu_ms"] = idle1["cpu_ms"] - warm["cpu_ms"]
        rows.append(idle1)

        time.sleep(FREEZE_S)
        t0, seqs = up.post(ext.port, BURST)
        rows.append(scenario_row("idle5", t0, sink.wait_seqs(seqs), rtt_ms))

        time.sleep(0.3)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(FREEZE_S)
        finally:
            os.kill(pid, signal.SIGCONT)
        t0, seqs = up.post(ext.port, BURST)
        rows.append(scenario_row("freeze5", t0, sink.wait_seqs(seqs), rtt_ms))
    finally:
        code = ext.stop()
    summary = parse_summary(ext.log)
    return rows, {"exit_code": code, "summary": summary}


def floor_once(proxy, sink, ca_file, body, seq, rtt_ms):
    """A plain client: TCP + TLS 1.3 (full handshake) + one HTTP/1.1 request, through the proxy."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["http/1.1"])
    req = ("POST /ingest?floor=1&seq=%d HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n"
           "Content-Type: application/octet-stream\r\n\r\n" % (seq, len(body))).encode()
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as curl and Go do
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(req + body)
            recs = sink.wait_seqs([seq])  # kept alive: nginx logs before a lingering close
    return scenario_row("floor", t0, recs, rtt_ms)


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(rows):
    out = {"runs": len(rows), "ms": med(rows, "ms"), "rtt": med(rows, "rtt"),  # None at RTT 0
           "min_ms": min(r["ms"] for r in rows), "max_ms": max(r["ms"] for r in rows),
           "tls": sorted({t for r in rows for t in r["tls"]}),
           "http": sorted({h for r in rows for h in r["http"]}),
           "resumed": med(rows, "resumed"), "connections": med(rows, "connections"),
           "uploads": rows[0]["uploads"]}
    if any("handshake_cpu_ms" in r for r in rows):
        out["handshake_cpu_ms"] = med(rows, "handshake_cpu_ms")
    if any(r.get("cpu_ms") is not None for r in rows):
        out["cpu_ms"] = med(rows, "cpu_ms")
    return out


def run(binaries, rtts_ms, reps, keep=False, small_ca=False, proxy_impl="c"):
    """binaries: [(label, path)]. Returns the section's results (JSON-able)."""
    if not shutil.which("openssl"):
        raise RuntimeError("the openssl command is needed (apt-get install openssl)")
    import tempfile
    work = tempfile.mkdtemp(prefix="ple-realnet-")
    res = {"rtts_ms": rtts_ms, "reps": reps, "freeze_s": FREEZE_S, "keepalive_s": KEEPALIVE_S,
           "burst": BURST, "binaries": {label: path for label, path in binaries}, "by_rtt": {}}
    sink = None
    try:
        body = make_bodies(work)[1]  # 16 KiB multipart pprof
        with open(body["path"], "rb") as f:
            raw_body = f.read()
        cert_dir = os.path.join(work, "certs")
        os.makedirs(cert_dir)
        make_ca_and_cert(cert_dir, "localhost", "DNS:localhost,IP:127.0.0.1")
        bundle = os.path.join(cert_dir, "bundle.pem")
        with open(bundle, "wb") as out:
            if os.path.exists(SYSTEM_CA) and not small_ca:
                with open(SYSTEM_CA, "rb") as f:
                    out.write(f.read())
            with open(os.path.join(cert_dir, "ca.pem"), "rb") as f:
                out.write(f.read())
        res["ca_bundle_certs"] = open(bundle).read().count("BEGIN CERTIFICATE")
        sink = NginxTlsSink(work, cert_dir, KEEPALIVE_S, spawn=spawn)
        for rtt in rtts_ms:
            proxy = DelayProxy(sink.port, rtt / 2000.0, impl=proxy_impl)
            res["proxy"] = proxy.impl
            try:
                by = {}
                floor = []
                for i in range(reps):
                    floor.append(floor_once(proxy, sink, bundle, raw_body,
                                            10_000_000 + 1000 * rtts_ms.index(rtt) + i, rtt))
                by["floor"] = {"floor": summarize(floor)}
                for label, path in binaries:
                    up = Uploader(body)
                    up.seq = 1_000_000 * (1 + list(dict(binaries)).index(label)) + 100_000 * rtts_ms.index(rtt)
                    per = collections.defaultdict(list)
                    checks = []
                    for i in range(reps):
                        log("realnet: RTT %d ms, %s, repetition %d/%d" % (rtt, label, i + 1, reps))
                        rows, check = one_repetition(path, work, sink, proxy, up, bundle, rtt)
                        for r in rows:
                            per[r["scenario"]].append(r)
                        checks.append(check)
                    counted = collections.Counter(r["seq"] for r in sink.read() if r["seq"] in set(up.sent))
                    lost = sum(1 for s in up.sent if counted[s] == 0)
                    dup = sum(n - 1 for n in counted.values() if n > 1)
                    by[label] = {name: summarize(rs) for name, rs in per.items()}
                    by[label]["_count"] = {"posted": len(up.sent), "lost": lost, "duplicated": dup,
                                           "exit_codes": sorted({c["exit_code"] for c in checks}),
                                           "failed": sum((c["summary"] or {}).get("failed", 0) for c in checks)}
                res["by_rtt"][str(rtt)] = by
            finally:
                proxy.close()
    finally:
        if sink:
            sink.close()
        if keep:
            log("realnet: kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return res


SCENARIOS = (("first", "first upload after start"), ("warm", "warm (kept-alive connection)"),
             ("idle1", "1 upload after 3 s idle"), ("idle5", "5 at once after 3 s idle, last delivered"),
             ("freeze5", "5 at once after a 3 s SIGSTOP freeze, last"))


def cell(s):
    if not s:
        return "-"
    extra = []
    if s.get("tls"):
        extra.append("/".join(t.replace("TLSv", "") for t in s["tls"]))
    if s.get("http"):
        extra.append("/".join(h.replace("HTTP/", "h") for h in s["http"]))
    if s["uploads"] > 1 or s.get("connections", 1) > 1:
        extra.append("%d conn" % s["connections"])
    if s.get("resumed"):
        extra.append("%g resumed" % s["resumed"])
    if s["rtt"] is None:  # RTT 0: the setup's own time, in ms only
        return "%.1f ms (%s)" % (s["ms"], ", ".join(extra))
    return "%.0f ms %.2f RTT (%s)" % (s["ms"], s["rtt"], ", ".join(extra))


def print_report(res):
    p = print
    labels = list(res["binaries"])
    p("\nReal network: extension -> delay proxy (%s; RTT as given, + one RTT for the TCP handshake) -> "
      % {"c": "ple-delay-proxy, C", "asyncio": "asyncio"}.get(res.get("proxy"), "?") +
      "nginx HTTPS (TLS 1.2+1.3, tickets, h2+h1.1, keepalive %d s); 16 KiB pprof; median of %d; "
      "CA bundle of %d certificates" % (res["keepalive_s"], res["reps"], res.get("ca_bundle_certs", 0)))
    for rtt, by in res["by_rtt"].items():
        p("\nRTT %s ms; physical floor (Python, TCP + TLS 1.3 + 1 request): %s; in theory 2.50 RTT "
          "(the SYN's round trip, TLS 1.3's, then the request's one way)"
          % (rtt, cell(by["floor"]["floor"])))
        w = 44
        p("%-42s " % "scenario" + " ".join("%-*s" % (w, l) for l in labels))
        for key, name in SCENARIOS:
            p("%-42s " % name + " ".join("%-*s" % (w, cell(by[l].get(key))) for l in labels))
        p("%-42s " % "handshake CPU (first - warm), ms" + " ".join(
            "%-*s" % (w, "%.2f (resumed: %.2f)" % (by[l]["first"]["handshake_cpu_ms"],
                                                  by[l]["idle1"]["handshake_cpu_ms"])) for l in labels))
        p("%-42s " % "posted / lost / duplicated" + " ".join(
            "%-*s" % (w, "%d / %d / %d%s" % (by[l]["_count"]["posted"], by[l]["_count"]["lost"],
                                             by[l]["_count"]["duplicated"],
                                             "" if by[l]["_count"]["failed"] == 0
                                             else " (%d failed)" % by[l]["_count"]["failed"]))
            for l in labels))
    p("\nTargets at 40 ms RTT (reported, never enforced): first <= 2.6 RTT, warm <= 0.55, 1 after a "
      "freeze <= 2.6, 5 after a freeze <= 2.7, handshake CPU <= 3 ms, 0 lost, 0 duplicated")
    by = res["by_rtt"].get("40")
    if by:
        for l in labels:
            b = by[l]
            checks = [("first", b["first"]["rtt"] <= 2.6), ("warm", b["warm"]["rtt"] <= 0.55),
                      ("idle1", b["idle1"]["rtt"] <= 2.6), ("idle5", b["idle5"]["rtt"] <= 2.7),
                      ("freeze5", b["freeze5"]["rtt"] <= 2.7),
                      ("handshake CPU", b["first"]["handshake_cpu_ms"] <= 3.0),
                      ("0 lost, 0 duplicated", b["_count"]["lost"] == 0 and b["_count"]["duplicated"] == 0)]
            p("  %-10s " % l + ", ".join("%s %s" % (n, "met" if ok else "NOT met") for n, ok in checks))
