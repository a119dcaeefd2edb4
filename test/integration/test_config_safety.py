"""An unusable PYROSCOPE_REMOTE_ADDRESS (or token, or tenant) never sends anything anywhere: the
real binary keeps the relay up, answers every push 500 with a text that names the variable and
the fix, logs it at most once a second, counts it in the shutdown summary, and in Lambda mode
still registers and serves its events.

"Anywhere" is checked with two recording remotes on 127.0.0.1: the one the mistyped address
names without a scheme, and a proxy that every proxy variable curl reads (http_proxy,
HTTPS_PROXY, ALL_PROXY) points to, so that an upload to any other host, the documented default
https://ingest.pyroscope.cloud included, would arrive there as a CONNECT. A control test proves
that trap catches the default.

Run: cd test/integration && PYTHONPATH=../support PLE_BINARY=... python3 -m unittest -v test_config_safety"""
import re
import time
import unittest

from harness import Extension, free_port, http_exchange, post
from lambda_emu import LambdaEmulator
from remote import RecordingRemote

REFUSED_LOG = r'level=error msg="upload refused with 500: the configuration is invalid'


class Trap(unittest.TestCase):
    def setUp(self):
        self.remote = RecordingRemote().start()
        self.addCleanup(self.remote.stop)
        self.proxy = RecordingRemote().start()
        self.addCleanup(self.proxy.stop)
        self.port = free_port()

    def env(self, **env):
        base = {"PYROSCOPE_RELAY_PORT": self.port, "PYROSCOPE_LOG_LEVEL": "debug",
                "PYROSCOPE_TIMEOUT": "2s", "PYROSCOPE_MAX_RETRIES": "0",
                "PYROSCOPE_AUTH_TOKEN": "tok-secret-1", "PYROSCOPE_SELF_PROFILING": "true",
                "PYROSCOPE_SELF_PROFILING_INTERVAL": "100ms",
                "http_proxy": self.proxy.url, "HTTPS_PROXY": self.proxy.url,
                "https_proxy": self.proxy.url, "ALL_PROXY": self.proxy.url}
        base.update(env)
        return base

    def start_dev(self, **env):
        ext = Extension(self.env(PYROSCOPE_DEV_MODE="true", **env))
        self.addCleanup(ext.kill)
        return ext.start()

    def push(self, body=b"profile-bytes"):
        return http_exchange(self.port, post("/ingest?name=app.cpu%7B%7D&from=1&until=2", body,
                                             {"Authorization": "Bearer client-tok"}))[0]

    def assert_nothing_sent(self, ext):
        """After the process has exited nothing more can be sent: both remotes saw nothing."""
        for who, r in (("the remote", self.remote), ("the proxy", self.proxy)):
            with r.cond:
                self.assertEqual((r.arrivals, r.connections), ([], []),
                                 "%s was reached; log:\n%s" % (who, ext.log()))


class RemoteAddressRefused(Trap):
    def test_host_port_without_scheme(self):
        typo = "127.0.0.1:%d" % self.remote.port  # the remote's own address, without http://
        ext = self.start_dev(PYROSCOPE_REMOTE_ADDRESS=typo)
        ext.wait_for_log(r'level=error msg="invalid configuration" variable=PYROSCOPE_REMOTE_ADDRESS'
                         r' value="?%s' % re.escape(typo))
        r = self.push()
        self.assertEqual(r.status, 500)
        self.assertEqual(r.headers.get("content-type"), "text/plain")
        text = r.body.decode()
        self.assertIn('PYROSCOPE_REMOTE_ADDRESS="%s"' % typo, text)
        self.assertIn("Did you mean https://%s ?" % typo, text)
        self.assertIn("nothing is relayed until it is fixed", text)
        self.assertNotIn("tok-secret-1", text)
        ext.wait_for_log(REFUSED_LOG)
        self.assertEqual(ext.stop(), 0, ext.log())
        ext.wait_for_log(r'msg="shutdown summary" accepted=0 relayed=0 failed=0 rejected=0 '
                         r'pending=0 .*refused_config=1\b')
        self.assert_nothing_sent(ext)
        self.assertNotIn("tok-secret-1", ext.log())
        self.assertNotRegex(ext.log(), r"msg=relaying|msg=self-profiling ")

    def test_bad_scheme_garbage_and_empty(self):
        for value, why in (("htps://profiles.example.com", "not an http:// or https:// URL"),
                           ("not a url at all", "not an http:// or https:// URL"),
                           ("", "set but empty")):
            with self.subTest(value=value):
                ext = self.start_dev(PYROSCOPE_REMOTE_ADDRESS=value)
                r = self.push()
                self.assertEqual(r.status, 500)
                self.assertIn("PYROSCOPE_REMOTE_ADDRESS", r.body.decode())
                self.assertIn(why, r.body.decode())
                self.assertNotIn("Did you mean", r.body.decode())
                self.assertEqual(ext.stop(), 0, ext.log())
                self.assert_nothing_sent(ext)

    def test_token_with_a_newline(self):
        ext = self.start_dev(PYROSCOPE_REMOTE_ADDRESS=self.remote.url,
                             PYROSCOPE_AUTH_TOKEN="tok-secret-1\n")
        r = self.push()
        self.assertEqual(r.status, 500)
        self.assertIn("PYROSCOPE_AUTH_TOKEN", r.body.decode())
        self.assertNotIn("tok-secret-1", r.body.decode())
        self.assertEqual(ext.stop(), 0, ext.log())
        self.assert_nothing_sent(ext)

    def test_keep_alive_and_logs_at_most_once_a_second(self):
        ext = self.start_dev(PYROSCOPE_REMOTE_ADDRESS="profiles-prod-001.grafana.net")
        n = 30
        started = time.monotonic()
        # One keep-alive connection, every request answered in turn: the body of a refused
        # push is read, so the connection stays usable.
        data = b"".join(post("/ingest?name=a&n=%d" % i, b"z" * 1000) for i in range(n))
        answers = http_exchange(self.port, data, responses=n, timeout=20)
        elapsed = time.monotonic() - started
        self.assertEqual([a.status for a in answers], [500] * n)
        self.assertIn("Did you mean https://profiles-prod-001.grafana.net ?",
                      answers[-1].body.decode())
        self.assertEqual(ext.stop(), 0, ext.log())
        ext.wait_for_log(r'shutdown summary.* refused_config=%d\b' % n)
        lines = [l for l in ext.log_lines() if re.search(REFUSED_LOG, l)]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), 1 + int(elapsed) + 1, "\n".join(lines))
        self.assert_nothing_sent(ext)


class TrapControl(Trap):
    def test_the_proxy_catches_the_default(self):
        """Unset, the documented default applies, and the trap sees it: the same test would
        catch an invalid value that fell back to it."""
        ext = self.start_dev()
        self.assertEqual(self.push().status, 200)
        arrived = self.proxy.wait_arrivals(1, timeout=10)
        self.assertEqual(arrived[0].method, "CONNECT")
        self.assertEqual(arrived[0].target, "ingest.pyroscope.cloud:443")
        ext.stop()


class LambdaModeRefused(Trap):
    def test_registers_serves_events_and_refuses(self):
        emu = LambdaEmulator()
        emu.__enter__()
        self.addCleanup(emu.stop)
        ext = Extension(self.env(AWS_LAMBDA_RUNTIME_API=emu.address,
                                 PYROSCOPE_REMOTE_ADDRESS="profiles-prod-001.grafana.net",
                                 PYROSCOPE_FLUSH_ON_INVOKE="true"))
        self.addCleanup(ext.kill)
        ext.start(wait_listening=False)
        emu.process = ext.proc
        emu.wait_calls("/register", 1)
        emu.wait_calls("/event/next", 1)
        emu.invoke()
        ext.wait_for_log(r"relay listening")
        r = self.push()
        self.assertEqual(r.status, 500)
        self.assertIn("PYROSCOPE_REMOTE_ADDRESS", r.body.decode())
        emu.wait_calls("/event/next", 2)  # the invoke was served; nothing to flush
        emu.shutdown()
        self.assertEqual(ext.wait_exit(10), 0, ext.log())
        ext.wait_for_log(r'shutdown summary.* invokes=1 .*refused_config=1\b')
        self.assertEqual(emu.calls_to("/error"), [])  # no init or exit error: nothing broke
        self.assert_nothing_sent(ext)


if __name__ == "__main__":
    unittest.main()
