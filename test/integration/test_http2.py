"""HTTP/2 to an https remote that offers it, through nginx (test/support/nginx_tls.py): a burst of
uploads that fits HTTP/2's first 64 KiB window shares one connection and one TLS handshake
(multiplexing, and CURLOPT_PIPEWAIT making the later transfers wait for the first connection's
ALPN answer), a larger burst opens a second connection for what does not fit, and a reconnect
after the remote closed the idle connection resumes the TLS session kept in the share handle, and
a remote that ends each connection after a few requests with a GOAWAY gets the refused streams
again on a new connection. Every upload arrives exactly once. (HTTP/1.1 over TLS, the fallback, is test_tls.py: the Python remote offers
no h2.) Skipped when nginx is not installed (test/install-deps.sh installs nginx-light)."""
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest

from delay_proxy import DelayProxy
from harness import BINARY, Extension, free_port
from lambda_emu import LambdaEmulator
from hostname import HOST, private_hosts_prefix
from nginx_tls import NginxTlsSink, nginx_path
from tlsca import make_ca_and_cert
from test_relay import http_exchange, post


SESSION_IN_URI = re.compile(r"__session_id__(?:=|%3D)([0-9a-f]{16})")


def ignores_sigpipe(pid):
    """Whether the process ignores SIGPIPE (bit 12 of SigIgn in /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGPIPE - 1)))
    return False


def established(port):
    """Established TCP connections from or to `port` on this host, from /proc/net/tcp."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            ends = (fields[1], fields[2])
            if fields[3] == "01" and any(int(e.rsplit(":", 1)[1], 16) == port for e in ends):
                n += 1
    return n


@unittest.skipUnless(nginx_path() and shutil.which("openssl"), "needs nginx and openssl (test/install-deps.sh)")
class Http2Test(unittest.TestCase):
    binary = BINARY

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        make_ca_and_cert(cls.dir, "localhost", "DNS:localhost,IP:127.0.0.1")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.work = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.work, True)
        self.sink = NginxTlsSink(self.work, self.dir, keepalive_s=1)
        self.addCleanup(self.sink.close)
        # 100 ms away: a burst reaches the relay well before the first connection is up.
        self.proxy = DelayProxy(self.sink.port, 0.05)
        self.addCleanup(self.proxy.close)
        self.seq = 0

    def start(self, remote, ca_dir=None, prefix=None, **env):
        self.port = free_port()
        ext = Extension(dict({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": self.port,
                              "PYROSCOPE_REMOTE_ADDRESS": remote, "PYROSCOPE_LOG_LEVEL": "debug",
                              "SSL_CERT_FILE": (ca_dir or self.dir) + "/ca.pem"}, **env),
                        binary=self.binary, prefix=prefix).start(timeout=20)
        self.addCleanup(ext.kill)
        return ext

    def burst(self, n, size=12000):
        """n uploads of `size` bytes posted at once (one client thread each); returns their
        sequence numbers."""
        seqs = list(range(self.seq + 1, self.seq + n + 1))
        self.seq += n
        answers = {}

        def one(s):
            try:
                answers[s] = http_exchange(self.port, post("/ingest?name=app.cpu&seq=%d" % s,
                                                           os.urandom(size)))[0].status
            except Exception as e:  # reported below with the others
                answers[s] = repr(e)
        threads = [threading.Thread(target=one, args=(s,)) for s in seqs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        self.assertEqual(answers, {s: 200 for s in seqs})
        return seqs

    def wait_remote_closed(self, timeout=10.0, ports=None):
        """Until nginx has closed the idle connection and the close has crossed the proxy to the
        extension's socket (no connection to either port established any more)."""
        deadline = time.monotonic() + timeout
        while any(established(p) for p in ports or (self.sink.port, self.proxy.port)):
            self.assertLess(time.monotonic(), deadline, "nginx kept the idle connection open")
            time.sleep(0.02)

    def freeze_past_keepalive(self, ext, sink):
        """SIGSTOPs the extension, as Lambda freezes a sandbox, until nginx has dropped the idle
        connection (bounded); then SIGCONT."""
        ext.proc.send_signal(signal.SIGSTOP)
        try:
            self.wait_remote_closed(ports=(sink.port,))
        finally:
            ext.proc.send_signal(signal.SIGCONT)

    def upload_per_connection(self, sink, rounds, ext=None):
        """`rounds` times: one upload, its arrival at `sink`, then nginx closing the idle
        connection, so that each upload reconnects; with `ext`, the extension must still be alive
        after each. Returns the sink's records of the uploads."""
        recs = []
        for _ in range(rounds):
            recs += sink.wait_seqs(self.burst(1))
            self.wait_remote_closed(ports=(sink.port,))
            if ext:
                self.assertIsNone(ext.proc.poll(), "the extension died")
        return recs

    def assert_once(self, seqs, sink=None):
        counts = {}
        for r in (sink or self.sink).read():
            counts[r["seq"]] = counts.get(r["seq"], 0) + 1
        self.assertEqual({s: counts.get(s, 0) for s in seqs}, {s: 1 for s in seqs})

    def check_burst_and_resumption(self, remote):
        ext = self.start(remote)
        first = self.burst(5)
        recs = self.sink.wait_seqs(first)
        self.assertEqual({r["proto"] for r in recs}, {"HTTP/2.0"})
        self.assertEqual({r["tls"] for r in recs}, {"TLSv1.3"})
        self.assertEqual(len({r["conn"] for r in recs}), 1, recs)  # one connection, one handshake
        ext.wait_for_log(r'msg="upload relayed" .* http=2 ', count=5)

        self.wait_remote_closed()  # keepalive_timeout 1s
        again = self.burst(5)
        recs2 = self.sink.wait_seqs(again)
        self.assertEqual(len({r["conn"] for r in recs2}), 1, recs2)
        self.assertNotEqual(recs2[0]["conn"], recs[0]["conn"])
        self.assertEqual({r["reused"] for r in recs2}, {"r"}, "the reconnect resumed no TLS session")
        # Past HTTP/2's first 64 KiB window, the rest of a burst opens its own connection (resumed)
        # instead of waiting a round trip for the server's window update.
        self.wait_remote_closed()
        big = self.burst(5, 20000)
        recs3 = self.sink.wait_seqs(big)
        self.assertEqual({r["reused"] for r in recs3}, {"r"}, "a reconnect after a resumed one")
        conns = {r["conn"] for r in recs3}
        self.assertTrue(2 <= len(conns) <= 3, recs3)
        per_conn = [sum(r["conn"] == c for r in recs3) for c in conns]
        self.assertGreaterEqual(max(per_conn), 3, recs3)  # 60 kB waited for the first one
        ext.signal_term()
        self.assertEqual(ext.wait_exit(10), 0)
        ext.wait_for_log(r'msg="shutdown summary" accepted=15 relayed=15 failed=0 ')
        self.assert_once(first + again + big)

    def test_burst_shares_one_connection_and_reconnect_resumes(self):
        self.check_burst_and_resumption("https://localhost:%d" % self.proxy.port)

    def test_tls12_remote_every_reconnect_resumes(self):
        """A remote that speaks only TLS 1.2 (and HTTP/2): every reconnect resumes, also those
        after a resumed connection, on which such a server issues no new session."""
        sink = NginxTlsSink(os.path.join(self.work, "tls12"), self.dir, keepalive_s=1,
                            protocols="TLSv1.2")
        self.addCleanup(sink.close)
        self.start("https://localhost:%d" % sink.port)
        recs = self.upload_per_connection(sink, 4)
        self.assertEqual([(r["tls"], r["proto"]) for r in recs], [("TLSv1.2", "HTTP/2.0")] * 4)
        self.assertEqual([r["reused"] for r in recs], [".", "r", "r", "r"], recs)
        self.assertEqual(len({r["conn"] for r in recs}), 4, recs)

    def test_remote_closing_idle_connections_never_kills_the_extension(self):
        """The remote closes each idle HTTP/2 connection (GOAWAY, close_notify, close) before the
        next upload comes. curl then reads both and answers, and the TLS library's close_notify
        meets a reset socket: that write must be an error the extension survives, not a SIGPIPE
        that kills it with the upload it has just accepted (the layer died so within 40 rounds in
        12 of 15 runs). Every upload arrives once, and the extension ignores SIGPIPE."""
        sink = NginxTlsSink(os.path.join(self.work, "short"), self.dir, keepalive_s=0.2)
        self.addCleanup(sink.close)
        ext = self.start("https://localhost:%d" % sink.port)
        self.assertTrue(ignores_sigpipe(ext.proc.pid), "SIGPIPE is not ignored")
        recs = self.upload_per_connection(sink, 40, ext)
        ext.signal_term()
        self.assertEqual(ext.wait_exit(10), 0)
        self.assert_once([r["seq"] for r in recs], sink)

    def test_remote_given_by_ip_address(self):
        self.check_burst_and_resumption("https://127.0.0.1:%d" % self.proxy.port)

    def test_field_host_name_tls_far_away_after_a_freeze(self):
        """As in the field: a remote named by a host name (only a private /etc/hosts knows it, and
        every new connection resolves it again), over TLS, 100 ms away, and a freeze (SIGSTOP)
        longer than the remote's keep-alive between two bursts. Every upload arrives once."""
        certs, sink, proxy = self.field_remote()
        ext = self.start("https://%s:%d" % (HOST, proxy.port), ca_dir=certs,
                         prefix=private_hosts_prefix(certs), PLE_TEST_DNS_CACHE_TIMEOUT="0")
        first = self.burst(5)
        self.assertEqual({r["tls"] for r in sink.wait_seqs(first)}, {"TLSv1.3"})
        self.freeze_past_keepalive(ext, sink)
        again = self.burst(5)
        sink.wait_seqs(again)
        ext.signal_term()
        self.assertEqual(ext.wait_exit(10), 0)
        ext.wait_for_log(r'msg="shutdown summary" accepted=10 relayed=10 failed=0 ')
        self.assert_once(first + again, sink)

    def test_goaway_mid_burst_loses_and_repeats_nothing(self):
        """A remote that ends each HTTP/2 connection after 3 requests with a GOAWAY, as load
        balancers do: the streams it did not take are sent again on a new connection, those it
        took are not. Bursts of 8 small uploads (one connection's first window holds them all,
        so all 8 start on it): every upload arrives exactly once."""
        work = self.work + "/goaway"
        sink = NginxTlsSink(work, self.dir, keepalive_s=5, keepalive_requests=3)
        self.addCleanup(sink.close)
        proxy = DelayProxy(sink.port, 0.01)
        self.addCleanup(proxy.close)
        ext = self.start("https://localhost:%d" % proxy.port)
        seqs = []
        for _ in range(3):
            burst = self.burst(8, size=4000)
            sink.wait_seqs(burst, timeout=20)
            seqs += burst
        recs = [r for r in sink.read() if r["seq"] in set(seqs)]
        self.assertEqual({r["proto"] for r in recs}, {"HTTP/2.0"})
        per_conn = {}
        for r in recs:
            per_conn[r["conn"]] = per_conn.get(r["conn"], 0) + 1
        self.assertLessEqual(max(per_conn.values()), 3, per_conn)  # the GOAWAYs did happen
        ext.signal_term()
        self.assertEqual(ext.wait_exit(10), 0, ext.log())
        ext.wait_for_log(r'msg="shutdown summary" accepted=24 relayed=24 failed=0 ')
        self.assert_once(seqs, sink)

    # -- the execution models in the field: the same remote, named, over TLS, 100 ms away --

    def field_remote(self):
        """nginx behind the delay proxy (100 ms RTT), its certificate for HOST, which only the
        extension's private /etc/hosts knows. Returns (certs, sink, proxy)."""
        certs = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, certs, True)
        make_ca_and_cert(certs, HOST, "DNS:%s" % HOST)
        sink = NginxTlsSink(self.work + "/field", certs, keepalive_s=1)
        self.addCleanup(sink.close)
        proxy = DelayProxy(sink.port, 0.05)
        self.addCleanup(proxy.close)
        return certs, sink, proxy

    def start_in_lambda(self, emu, certs, proxy, **env):
        """The extension registered with the emulator, resolving HOST again per connection."""
        self.port = free_port()
        e = dict(emu.env(), PYROSCOPE_RELAY_PORT=self.port, PYROSCOPE_LOG_LEVEL="debug",
                 PYROSCOPE_REMOTE_ADDRESS="https://%s:%d" % (HOST, proxy.port),
                 SSL_CERT_FILE=certs + "/ca.pem", PLE_TEST_DNS_CACHE_TIMEOUT="0",
                 AWS_LAMBDA_FUNCTION_NAME="field-fn", **env)
        ext = Extension(e, binary=self.binary, prefix=private_hosts_prefix(certs))
        ext.start(timeout=20)
        self.addCleanup(ext.kill)
        emu.process = ext.proc
        emu.wait_calls("/event/next", 1, timeout=10)
        # The CA bundle is parsed once registered, during the function's init, not at the first
        # upload.
        ext.wait_for_log(r'msg="CA certificates parsed" us=\d+', timeout=10)
        return ext

    def emulator(self, **kw):
        emu = LambdaEmulator(**kw)
        emu.__enter__()
        self.addCleanup(emu.stop)
        return emu

    def test_field_snapstart_restore(self):
        """SnapStart in the field: an upload during init, the snapshot (SIGSTOP for longer than
        the remote's keep-alive), the restore with the first INVOKE, then a burst. Nothing after
        the restore travels on a connection or a TLS session made before the snapshot (a full
        handshake, not a resumption: a session ticket must not be shared by every clone), the
        restored environment has a session id of its own, and every upload arrives once."""
        certs, sink, proxy = self.field_remote()
        emu = self.emulator()
        ext = self.start_in_lambda(emu, certs, proxy, **LambdaEmulator.SNAPSTART_ENV)
        init = self.burst(1)
        before = sink.wait_seqs(init)
        emu.snapshot_and_restore(frozen_s=1.5)
        emu.invoke()
        # The function pushes once its invoke runs; the extension knows of the restore by then
        # (the INVOKE answers the poll that the snapshot froze).
        ext.wait_for_log(r'msg="restored from a SnapStart snapshot', timeout=10)
        after = self.burst(5)
        recs = sink.wait_seqs(after)
        self.assertEqual({r["tls"] for r in recs}, {"TLSv1.3"})
        self.assertEqual({r["reused"] for r in recs}, {"."}, recs)  # "r" would be a resumption
        self.assertFalse({r["conn"] for r in recs} & {r["conn"] for r in before})
        sid = SESSION_IN_URI.search(before[0]["uri"]).group(1)
        self.assertEqual({SESSION_IN_URI.search(r["uri"]).group(1) for r in recs} & {sid}, set())
        ev = emu.shutdown(deadline_in_ms=2000)
        self.assertEqual(ext.wait_exit(10), 0, ext.log())
        self.assertLess(time.time() * 1000, ev["deadlineMs"])
        ext.wait_for_log(r'msg="shutdown summary" accepted=6 relayed=6 failed=0 ')
        self.assert_once(init + after, sink)

    def test_field_on_demand_flush_at_the_end_of_each_invoke(self):
        """On-demand Lambda in the field, with PYROSCOPE_FLUSH_STRATEGY=end: each invoke's upload
        reaches the remote before the extension polls /event/next (the freeze may follow at
        once), also after a freeze longer than the remote's keep-alive, when the connection
        must be made again."""
        certs, sink, proxy = self.field_remote()
        emu = self.emulator()
        ext = self.start_in_lambda(emu, certs, proxy, PYROSCOPE_FLUSH_ON_INVOKE="true",
                                   PYROSCOPE_FLUSH_STRATEGY="end")
        ext.wait_for_log(r"subscribed to the Telemetry API", timeout=10)
        seqs, statuses = [], []
        for i in range(2):
            if i:  # frozen between invokes, past nginx's keep-alive
                self.freeze_past_keepalive(ext, sink)
            self.seq += 1
            seqs.append(self.seq)
            path = "/ingest?name=app.cpu&seq=%d" % self.seq
            emu.invoke(timeout_ms=10000, handler=lambda path=path: statuses.append(
                http_exchange(self.port, post(path, os.urandom(8000)))[0].status))
            emu.wait_calls("/event/next", i + 2, timeout=10)
            # The answer took 50 ms to come back through the proxy: nginx logged it by then.
            self.assertIn(self.seq, {r["seq"] for r in sink.read()},
                          "invoke %d's upload was not delivered before its /next" % i)
        self.assertEqual(statuses, [200, 200])
        emu.shutdown()
        self.assertEqual(ext.wait_exit(10), 0, ext.log())
        ext.wait_for_log(r'msg="shutdown summary" accepted=2 relayed=2 failed=0 ')
        self.assert_once(seqs, sink)

    def test_field_managed_instances(self):
        """Lambda Managed Instances in the field: registered for SHUTDOWN only, four invokes run
        at once and each pushes two uploads while it runs; they are relayed as they come (no
        INVOKE to wait for), and the SHUTDOWN drains within its deadline: every upload once."""
        certs, sink, proxy = self.field_remote()
        emu = self.emulator(managed=True)
        ext = self.start_in_lambda(emu, certs, proxy)
        seqs, statuses, lock = [], [], threading.Lock()

        def handler():
            for _ in range(2):
                with lock:
                    self.seq += 1
                    s = self.seq
                    seqs.append(s)
                st = http_exchange(self.port, post("/ingest?name=app.cpu&seq=%d" % s,
                                                   os.urandom(8000)))[0].status
                with lock:
                    statuses.append(st)
        emu.invoke_concurrent([handler] * 4)
        self.assertEqual(statuses, [200] * 8)
        sink.wait_seqs(seqs)  # delivered while the environment lives: no SHUTDOWN needed
        ev = emu.shutdown(deadline_in_ms=2000)
        self.assertEqual(ext.wait_exit(10), 0, ext.log())
        self.assertLess(time.time() * 1000, ev["deadlineMs"])
        self.assertFalse(emu.killed)
        ext.wait_for_log(r'msg="shutdown summary" accepted=8 relayed=8 failed=0 ')
        self.assert_once(seqs, sink)


if __name__ == "__main__":
    unittest.main()
