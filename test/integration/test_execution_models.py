"""Lambda's execution models and the flush at the end of an invoke, against the real binary, the
Extensions and Telemetry API emulator and a recording remote, all on loopback. Every wait is on
an event (a recorded call, a delivered telemetry batch, a log line, a process exit) with a bound.
"""
import http.client
import json
import re
import threading
import time
import unittest

from harness import Extension, LambdaCase, RawClient, http_exchange, post, push
from lambda_emu import LambdaEmulator


class Case(LambdaCase):
    def start(self, **env):
        ext = super().start(**env)
        self.emu.wait_calls("/event/next", 1)
        return ext

    def subscribed(self, ext):
        """Waits until the extension's subscription was accepted and it says so."""
        ext.wait_for_log(r'subscribed to the Telemetry API')
        self.assertTrue(self.emu.telemetry.subscribed)
        return ext


class ManagedInstancesTest(Case):
    managed = True

    def test_shutdown_only_concurrent_invokes_every_upload_delivered(self):
        self.remote.delay = 0.05
        ext = self.start(PYROSCOPE_FLUSH_ON_INVOKE="true", PYROSCOPE_TRACE_SAMPLE_THRESHOLD="0")
        regs = self.emu.calls_to("/register")
        self.assertEqual([r.json() for r in regs], [{"events": ["SHUTDOWN"]}])
        ext.wait_for_log(r'level=warning msg="trace sampling and the per-trace archive are off')
        barrier = threading.Barrier(8)
        statuses = []

        def handler():
            barrier.wait(5)  # the invokes overlap
            for _ in range(2):
                statuses.append(push(self.port))

        self.emu.invoke_concurrent([handler] * 8)
        self.assertEqual(statuses, [200] * 16)
        ev = self.emu.shutdown(deadline_in_ms=2000)
        self.assertEqual(ext.wait_exit(5), 0)
        self.assertFalse(self.emu.killed)
        self.assertLess(time.time() * 1000, ev["deadlineMs"])
        # recorded by the remote just after it answered: wait, bounded
        self.assertEqual(len(self.remote.wait_for(16, timeout=5)), 16)
        ext.wait_for_log(r'shutdown summary.* accepted=16 relayed=16 failed=0 .*pending=0')
        # No INVOKE, no Telemetry API: nothing to flush, nothing to attribute.
        self.assertEqual(self.emu.calls_to("/2022-07-01/telemetry"), [])
        self.assertEqual(len(self.emu.calls_to("/event/next")), 1)
        self.assertNotRegex(ext.log(), r'level=error')

    def test_shutdown_drains_a_slow_remote_before_the_kill(self):
        self.remote.delay = 0.3
        ext = self.start(PYROSCOPE_NUM_WORKERS="2")
        self.emu.invoke_concurrent([lambda: push(self.port)] * 4)
        ev = self.emu.shutdown(deadline_in_ms=2000)
        self.assertEqual(ext.wait_exit(5), 0)
        self.assertFalse(self.emu.killed)
        self.assertLess(time.time() * 1000, ev["deadlineMs"])
        # recorded by the remote just after it answered: wait, bounded
        self.assertEqual(len(self.remote.wait_for(4, timeout=5)), 4)


class RegisterRetryTest(Case):
    def test_invoke_refused_retries_with_shutdown_only_and_keeps_running(self):
        self.emu.refuse_invoke = True  # no AWS_LAMBDA_INITIALIZATION_TYPE says so
        ext = self.start()
        regs = self.emu.calls_to("/register")
        self.assertEqual([r.json() for r in regs],
                         [{"events": ["INVOKE", "SHUTDOWN"]}, {"events": ["SHUTDOWN"]}])
        ext.wait_for_log(r'level=warning msg="register refused INVOKE events')
        self.assertEqual(push(self.port), 200)
        self.remote.wait_for(1)
        self.emu.shutdown()
        self.assertEqual(ext.wait_exit(5), 0)
        self.assertEqual(self.emu.calls_to("/init/error") + self.emu.calls_to("/exit/error"), [])

    def test_other_register_failures_still_exit(self):
        self.emu.register_status = 403  # Extension.InitError, not InvalidEventType
        base = {"AWS_LAMBDA_RUNTIME_API": self.emu.address,
                "PYROSCOPE_RELAY_PORT": str(self.port)}
        ext = Extension(env=base)
        ext.start(wait_listening=False)
        self.addCleanup(ext.kill)
        self.assertEqual(ext.wait_exit(5), 1)
        self.assertEqual(len(self.emu.calls_to("/register")), 1)


class FlushAtEndTest(Case):
    def run_invoke(self, strategy, push_after_next=False):
        self.remote.delay = 0.3
        ext = self.subscribed(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true",
                                         PYROSCOPE_FLUSH_STRATEGY=strategy))
        statuses = []
        pushed = threading.Event()

        def handler():
            if push_after_next:  # the extension has read the INVOKE and polled again
                self.emu.wait_calls("/event/next", 2, timeout=8)
            statuses.append(push(self.port))
            pushed.set()

        ev = self.emu.invoke(timeout_ms=10000, handler=handler)
        nxt = self.emu.wait_calls("/event/next", 2, timeout=8)[-1]
        self.assertTrue(pushed.wait(5))
        self.assertEqual(statuses, [200])
        return ext, ev["invocation"], nxt

    def test_end_delivers_the_invokes_uploads_before_its_next(self):
        ext, inv, nxt = self.run_invoke("end")
        got = self.remote.wait_for(1, timeout=5)
        self.assertLessEqual(got[0].answered, nxt.mono,
                             "the upload of invoke N must be delivered before the /next ending N")
        self.assertGreaterEqual(nxt.mono, inv.runtime_done)
        line = ext.wait_for_log(r'msg="invoke done" requestId=%s post_runtime_ms=\d+' % inv.request_id)
        ms = int(line.rsplit("post_runtime_ms=", 1)[1].split()[0])
        self.assertGreaterEqual(ms, 0)
        self.assertLess(ms, 5000)
        self.emu.shutdown()
        self.assertEqual(ext.wait_exit(5), 0)
        ext.wait_for_log(r'shutdown summary.* post_runtime_ms=%d ' % ms)

    def test_end_with_nothing_to_flush_polls_next_once(self):
        # Most invokes push nothing (clients upload every 10 s): runtimeDone finds the queue idle
        # and /next is polled at once. The wait for runtimeDone must then be over for good: no
        # second /next when its bound (the deadline minus 100 ms) passes, and no warning.
        ext = self.subscribed(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true",
                                         PYROSCOPE_FLUSH_STRATEGY="end",
                                         PYROSCOPE_LOG_LEVEL="debug"))
        ev = self.emu.invoke(timeout_ms=1000)
        self.emu.wait_calls("/event/next", 2, timeout=8)
        ext.wait_for_log(r'msg="invoke done" requestId=%s' % ev["requestId"])
        with self.assertRaises(AssertionError):  # past the invoke's deadline, with margin
            self.emu.wait_calls("/event/next", 3, timeout=2.0)
        self.assertNotIn("did not come", ext.log())
        ev = self.emu.invoke(timeout_ms=10000)  # the stream is still trusted: end again
        self.emu.wait_calls("/event/next", 3, timeout=8)
        ext.wait_for_log(r'msg="invoke done" requestId=%s' % ev["requestId"])
        self.emu.shutdown()
        self.assertEqual(ext.wait_exit(5), 0)
        self.assertEqual(len(self.emu.calls_to("/event/next")), 3, ext.log())

    def test_next_invoke_leaves_the_upload_to_the_next_event(self):
        # The contrast that shows the test above can fail: next-invoke polls at once.
        ext, inv, nxt = self.run_invoke("next-invoke", push_after_next=True)
        got = self.remote.wait_for(1, timeout=5)
        self.assertGreater(got[0].answered, nxt.mono)

    def test_auto_flushes_at_the_end_of_a_first_invoke(self):
        ext, inv, nxt = self.run_invoke("auto")
        got = self.remote.wait_for(1, timeout=5)
        self.assertLessEqual(got[0].answered, nxt.mono)

    def test_an_invalid_strategy_is_a_warning_and_auto(self):
        self.remote.delay = 0.3
        ext = self.subscribed(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true",
                                         PYROSCOPE_FLUSH_STRATEGY="periodically,100"))
        ext.wait_for_log(r'level=warning msg="invalid value, default used" '
                         r'variable=PYROSCOPE_FLUSH_STRATEGY value="periodically,100" '
                         r'default=auto error="not a flush strategy \(end, next-invoke or auto\)"')
        ext.wait_for_log(r'msg=relaying .*flush_strategy=auto')
        statuses = []
        ev = self.emu.invoke(timeout_ms=10000, handler=lambda: statuses.append(push(self.port)))
        nxt = self.emu.wait_calls("/event/next", 2, timeout=8)[-1]
        got = self.remote.wait_for(1, timeout=5)
        self.assertLessEqual(got[0].answered, nxt.mono, "auto flushes a first invoke at its end")

    def test_auto_switches_to_next_invoke_when_invokes_come_often(self):
        ext = self.subscribed(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true"))
        for i in range(4):
            self.emu.invoke()
            self.emu.wait_calls("/event/next", i + 2)
        ext.wait_for_log(r'msg="flush strategy auto: switching" to=next-invoke gap_ms=\d+')

    def test_late_runtime_done_falls_back_within_the_deadline_and_warns_once(self):
        ext = self.subscribed(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true",
                                         PYROSCOPE_FLUSH_STRATEGY="end"))
        # The stream shows life (platform.start) but runtimeDone comes after the deadline.
        ev = self.emu.invoke(timeout_ms=1200, runtime_done="late", late_ms=3000)
        nxt = self.emu.wait_calls("/event/next", 2, timeout=5)[-1]
        self.assertLess(nxt.wall_ms, ev["deadlineMs"], "/next must come before the deadline")
        ext.wait_for_log(r'level=warning msg="platform.runtimeDone did not come')
        # From then on END is not tried: the next invoke's /next comes at once.
        t0 = time.monotonic()
        self.emu.invoke(timeout_ms=10000, runtime_done="missing")
        nxt = self.emu.wait_calls("/event/next", 3, timeout=5)[-1]
        self.assertLess(nxt.mono - t0, 1.0)
        self.emu.shutdown()
        self.assertEqual(ext.wait_exit(5), 0)
        self.assertEqual(len(ext.log_lines()) and
                         len([l for l in ext.log_lines() if "runtimeDone did not come" in l]), 1)

    def test_sigterm_while_waiting_for_runtime_done_drains_and_exits(self):
        ext = self.subscribed(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true",
                                         PYROSCOPE_FLUSH_STRATEGY="end"))
        self.assertEqual(push(self.port), 200)
        self.emu.invoke(timeout_ms=30000, runtime_done="missing")
        mark = ext.mark()
        ext.wait_for_log(r'level=debug msg="upload relayed"')
        # platform.start arrived: now it waits up to the deadline (tens of seconds).
        ext.wait_for_log(r'waiting for platform.runtimeDone.* at_most_ms=\d{5}')
        ext.signal_term()
        self.assertEqual(ext.wait_exit(5), 0)
        ext.wait_for_log(r'shutdown summary.* relayed=1 .*pending=0', after=mark)

    def test_next_comes_promptly_when_the_stream_is_silent(self):
        ext = self.subscribed(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true",
                                         PYROSCOPE_FLUSH_STRATEGY="end"))
        # Subscribed, yet neither platform.start nor runtimeDone ever comes (as some local tools).
        t0 = time.monotonic()
        self.emu.invoke(timeout_ms=30000, start=False, runtime_done="missing")
        nxt = self.emu.wait_calls("/event/next", 2, timeout=5)[-1]
        self.assertLess(nxt.mono - t0, 2.0, "a silent stream must not hold the invoke")
        ext.wait_for_log(r'level=warning msg="platform.runtimeDone did not come')

    def test_failed_subscription_is_one_warning_and_todays_flush(self):
        self.emu.telemetry.status = 500
        self.remote.delay = 0.6
        ext = self.start(PYROSCOPE_FLUSH_ON_INVOKE="true", PYROSCOPE_FLUSH_STRATEGY="end")
        ext.wait_for_log(r'level=warning msg="Telemetry API subscription failed.*status=500')
        self.assertEqual(push(self.port), 200)
        self.emu.invoke(timeout_ms=5000, start=False, runtime_done="missing")
        nxt = self.emu.wait_calls("/event/next", 2, timeout=5)[-1]
        got = self.remote.wait_for(1, timeout=5)
        self.assertGreaterEqual(nxt.mono, got[0].answered, "today's flush still awaits the upload")

    def test_unanswered_subscription_does_not_hold_init(self):
        self.emu.telemetry.unanswered.set()
        self.addCleanup(self.emu.telemetry.release.set)
        self.remote.delay = 0.6
        ext = self.start(PYROSCOPE_FLUSH_ON_INVOKE="true", PYROSCOPE_FLUSH_STRATEGY="end")
        ext.wait_for_log(r'level=warning msg="Telemetry API subscription unanswered.*waited_ms=2000',
                         timeout=8)
        self.emu.wait_calls("/event/next", 1, timeout=5)  # init is over
        self.assertEqual(push(self.port), 200)
        self.emu.invoke(timeout_ms=5000, start=False, runtime_done="missing")
        nxt = self.emu.wait_calls("/event/next", 2, timeout=5)[-1]
        got = self.remote.wait_for(1, timeout=5)
        self.assertGreaterEqual(nxt.mono, got[0].answered, "today's flush still awaits the upload")
        self.emu.shutdown()
        self.assertEqual(ext.wait_exit(5), 0)

    def test_subscription_is_what_aws_accepts(self):
        ext = self.subscribed(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true"))
        put = self.emu.calls_to("/2022-07-01/telemetry")
        self.assertEqual(len(put), 1)
        self.assertEqual(put[0].method, "PUT")
        self.assertEqual(put[0].header("Lambda-Extension-Identifier"), self.emu.extension_id)
        sub = put[0].json()
        self.assertEqual(sub["schemaVersion"], "2025-01-29")
        self.assertEqual(sub["types"], ["platform"])
        self.assertEqual(sub["buffering"]["timeoutMs"], 25)
        self.assertRegex(sub["destination"]["URI"], r'^http://sandbox\.localdomain:\d+/$')
        self.assertGreater(self.emu.telemetry.port, 0)

    def test_no_subscription_without_flush_on_invoke(self):
        ext = self.start()
        self.emu.invoke()
        self.emu.wait_calls("/event/next", 2)
        self.assertEqual(self.emu.calls_to("/2022-07-01/telemetry"), [])


class EmulatorSubscriptionTest(unittest.TestCase):
    """The emulator refuses what AWS refuses, so that its acceptance of ours means something."""

    def put(self, emu, body, ident=True):
        host, port = emu.address.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        headers = {"Lambda-Extension-Identifier": emu.extension_id} if ident else {}
        conn.request("PUT", "/2022-07-01/telemetry", body=json.dumps(body), headers=headers)
        r = conn.getresponse()
        r.read()
        conn.close()
        return r.status

    def test_validation(self):
        good = {"schemaVersion": "2025-01-29", "types": ["platform"],
                "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
                "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243/"}}

        def bad(**change):
            b = json.loads(json.dumps(good))
            for k, v in change.items():
                if "." in k:
                    a, c = k.split(".")
                    b[a][c] = v
                else:
                    b[k] = v
            return b

        with LambdaEmulator() as emu:
            self.assertEqual(self.put(emu, good, ident=False), 403)
            for body in (bad(schemaVersion="2020-01-01"), bad(types=[]), bad(types=["logs"]),
                         bad(**{"buffering.timeoutMs": 10}), bad(**{"buffering.maxItems": 5}),
                         bad(**{"buffering.maxBytes": 1}),
                         bad(**{"destination.URI": "http://127.0.0.1:4243/"}),
                         bad(**{"destination.URI": "http://sandbox.localdomain:9001/"}),
                         bad(**{"destination.protocol": "TCP"})):
                with self.subTest(body=body):
                    self.assertEqual(self.put(emu, body), 400)
            self.assertFalse(emu.telemetry.subscribed)
            self.assertEqual(self.put(emu, bad(**{"destination.URI": "http://sandbox:4243"})), 200)
            self.assertEqual(self.put(emu, good), 200)
        with LambdaEmulator(managed=True) as emu:  # Managed Instances take 2025-01-29 only
            self.assertEqual(self.put(emu, bad(schemaVersion="2022-12-13")), 400)
            self.assertEqual(self.put(emu, good), 200)


class TelemetryListenerTest(Case):
    def setUp(self):
        super().setUp()
        self.ext = self.subscribed(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true",
                                              PYROSCOPE_CLIENT_TIMEOUT="1s"))
        self.tport = self.emu.telemetry.port

    def one(self, data):
        got = http_exchange(self.tport, data)
        self.assertEqual(len(got), 1)
        return got[0]

    def test_a_telemetry_batch_is_answered_200(self):
        body = json.dumps([{"time": "t", "type": "platform.start",
                            "record": {"requestId": "x"}}]).encode()
        self.assertEqual(self.one(post("/", body)).status, 200)

    def test_what_is_not_lambdas_telemetry_is_refused_with_a_reason(self):
        cases = [
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405, b"only POST /"),
            (post("/ingest", b"[]"), 404, b"only POST /"),
            (post("/", b"not json"), 400, b"not JSON"),
            (post("/", b'{"type":"platform.start"}'), 400, b"not a JSON array"),
            (post("/", b'[{"record":{}}]'), 400, b"without a string"),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413,
             b"over 1 MiB"),
            (post("/", b"[]", headers={"X-Big": "a" * 20000}), 431, b"over 16 KiB"),
            (b"BREW / HTTP/1.1\r\n\r\n", 400, b""),
        ]
        for data, status, reason in cases:
            with self.subTest(data=data[:40]):
                r = self.one(data)
                self.assertEqual(r.status, status)
                self.assertIn(reason, r.body)
        self.ext.wait_for_log(r'level=warning msg="telemetry listener refused a request"')
        # The relay and the lifecycle are unharmed.
        self.emu.invoke()
        self.emu.wait_calls("/event/next", 2)
        self.assertEqual(push(self.port), 200)

    def test_a_chunked_body_over_the_bound_is_refused(self):
        with RawClient(self.tport) as c:
            c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"[" + b" " * 65536
            try:
                for _ in range(20):
                    c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass  # refused and closed while sending
            r = c.read_response()
        self.assertEqual(r.status, 413)

    def test_a_request_stalled_in_the_middle_is_answered_408(self):
        with RawClient(self.tport, timeout=10) as c:
            c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[")
            r = c.read_response()
            self.assertEqual(r.status, 408)
            self.assertIn(b"stalled", r.body)
            self.assertTrue(c.closed_by_peer())
        # An idle kept-alive connection is left alone.
        with RawClient(self.tport, timeout=3) as idle:
            idle.send(post("/", b"[]"))
            self.assertEqual(idle.read_response().status, 200)
            self.assertFalse(idle.closed_by_peer())

    def test_connections_are_bounded(self):
        clients = [RawClient(self.tport) for _ in range(8)]
        try:
            for _ in range(30):  # a flood of extra connections: each closed, logged once a second
                with RawClient(self.tport, timeout=3) as extra:
                    self.assertTrue(extra.closed_by_peer(), "a 9th connection must be closed")
            self.ext.wait_for_log(r'too many connections; new ones closed" closed=1 limit=8')
            self.assertLessEqual(len(re.findall("too many connections", self.ext.log())), 3,
                                 "refusals must be logged at most once a second")
            for c in clients:  # the 8 still work
                c.send(post("/", b"[]"))
                self.assertEqual(c.read_response().status, 200)
        finally:
            for c in clients:
                c.close()


if __name__ == "__main__":
    unittest.main()
