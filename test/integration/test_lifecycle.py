"""The Lambda lifecycle, against the real binary, the Extensions API emulator and a recording
remote, all on loopback. Every wait is on an event (a recorded call, a log line, a process exit)
with a bound."""
import json
import os
import re
import socket
import time
import unittest

from harness import Extension, LambdaCase, free_port, push


class LifecycleTest(LambdaCase):
    def registered(self, ext):
        self.emu.wait_calls("/register", 1)
        self.emu.wait_calls("/event/next", 1)
        return ext

    # -- start --
    def test_registers_after_listening_with_name_feature_and_events(self):
        port_open_at_register = []

        def probe(call):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    port_open_at_register.append(True)
            except OSError:
                port_open_at_register.append(False)

        self.emu.on_register = probe
        ext = self.registered(self.start())
        self.assertEqual(port_open_at_register, [True], "the relay must listen before /register")
        reg = self.emu.calls_to("/register")[0]
        self.assertEqual(reg.header("Lambda-Extension-Name"), os.path.basename(ext.binary))
        self.assertEqual(reg.header("Lambda-Extension-Accept-Feature"), "accountId")
        self.assertEqual(reg.json(), {"events": ["INVOKE", "SHUTDOWN"]})
        ext.wait_for_log(r'msg=registered .*function=demo-function')

    def test_identifier_on_every_call(self):
        ext = self.registered(self.start())
        for _ in range(3):
            n = len(self.emu.calls_to("/event/next"))
            self.emu.invoke()
            self.emu.wait_calls("/event/next", n + 1)
        self.emu.shutdown()
        self.assertEqual(ext.wait_exit(5), 0)
        nexts = self.emu.calls_to("/event/next")
        self.assertGreaterEqual(len(nexts), 4)
        for c in nexts:
            self.assertEqual(c.header("Lambda-Extension-Identifier"), self.emu.extension_id)

    # -- flush on invoke --
    def test_flush_on_invoke_waits_for_the_upload_in_flight(self):
        self.remote.delay = 0.6
        self.registered(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true"))
        self.assertEqual(push(self.port), 200)
        self.emu.invoke(timeout_ms=5000)
        nxt = self.emu.wait_calls("/event/next", 2, timeout=5)[-1]
        got = self.remote.wait_for(1, timeout=5)
        self.assertGreaterEqual(nxt.mono, got[0].answered,
                                "next was polled before the upload in flight finished")

    def test_flush_also_awaits_uploads_that_arrive_during_it(self):
        self.remote.delay = 0.5
        self.registered(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true"))
        self.assertEqual(push(self.port, body=b"first"), 200)
        self.remote.wait_arrivals(1)
        self.emu.invoke(timeout_ms=5000)
        self.assertEqual(push(self.port, body=b"second"), 200)  # pushed while flushing
        nxt = self.emu.wait_calls("/event/next", 2, timeout=5)[-1]
        got = self.remote.wait_for(2, timeout=5)
        self.assertGreaterEqual(nxt.mono, max(g.answered for g in got))

    def test_without_flush_next_is_polled_at_once(self):
        self.remote.delay = 1.5
        self.registered(self.start())
        self.assertEqual(push(self.port), 200)
        self.remote.wait_arrivals(1, timeout=5)  # the upload is in flight now
        t0 = time.monotonic()
        self.emu.invoke()
        nxt = self.emu.wait_calls("/event/next", 2, timeout=5)[-1]
        self.assertLess(nxt.mono - t0, 0.5)
        self.assertEqual(len(self.remote.requests), 0, "the upload should still be in flight")

    def test_flush_gives_up_before_the_invoke_deadline(self):
        self.remote.hang = True
        ext = self.registered(self.start(PYROSCOPE_FLUSH_ON_INVOKE="true"))
        self.assertEqual(push(self.port), 200)
        self.remote.wait_arrivals(1, timeout=5)
        ev = self.emu.invoke(timeout_ms=800)
        nxt = self.emu.wait_calls("/event/next", 2, timeout=5)[-1]
        self.assertLess(nxt.wall_ms, ev["deadlineMs"], "next must come before the deadline")
        self.assertGreater(nxt.wall_ms, ev["deadlineMs"] - 400, "gave up far too early")
        ext.wait_for_log(r'flush gave up.*pending=1')

    # -- shutdown --
    def test_shutdown_drains_a_slow_remote_within_the_deadline(self):
        self.remote.delay = 0.2
        ext = self.registered(self.start(PYROSCOPE_NUM_WORKERS=1))
        for _ in range(5):
            self.assertEqual(push(self.port), 200)
        ev = self.emu.shutdown(deadline_in_ms=2000)
        self.assertEqual(ext.wait_exit(5), 0)
        self.assertFalse(self.emu.killed)
        self.assertLess(time.time() * 1000, ev["deadlineMs"])
        # recorded by the remote just after it answered: wait, bounded
        self.assertEqual(len(self.remote.wait_for(5, timeout=5)), 5)
        ext.wait_for_log(r'shutdown summary.* relayed=5 .*pending=0')

    def test_shutdown_exits_before_the_deadline_when_the_remote_hangs(self):
        self.remote.hang = True
        ext = self.registered(self.start())
        self.assertEqual(push(self.port), 200)
        self.remote.wait_arrivals(1, timeout=5)
        ev = self.emu.shutdown(deadline_in_ms=1500)
        self.assertEqual(ext.wait_exit(5), 0)
        exited = time.time() * 1000
        self.assertFalse(self.emu.killed, "Lambda would have SIGKILLed it")
        self.assertLess(exited, ev["deadlineMs"])
        ext.wait_for_log(r'upload not delivered')
        ext.wait_for_log(r'shutdown summary.* relayed=0 .*pending=1 ')

    def test_shutdown_reason_in_capitals_is_a_normal_spindown(self):
        ext = self.registered(self.start())
        self.emu.shutdown(reason="SPINDOWN")
        self.assertEqual(ext.wait_exit(5), 0)
        ext.wait_for_log(r'level=info msg="shutdown event" reason=SPINDOWN')

    def test_shutdown_reason_timeout_in_any_case_is_a_warning(self):
        ext = self.registered(self.start())
        self.emu.shutdown(reason="Timeout")
        self.assertEqual(ext.wait_exit(5), 0)
        ext.wait_for_log(r'level=warning msg="shutdown event" reason=Timeout')

    def test_a_retry_waiting_never_pushes_shutdown_past_the_deadline(self):
        self.remote.status = 503
        self.remote.retry_after = 30  # the remote asks for a long wait
        ext = self.registered(self.start())
        self.assertEqual(push(self.port), 200)
        ext.wait_for_log(r'will retry" .*retry_in_ms=30000')
        ev = self.emu.shutdown(deadline_in_ms=1500)
        self.assertEqual(ext.wait_exit(5), 0)
        self.assertLess(time.time() * 1000, ev["deadlineMs"])
        self.assertFalse(self.emu.killed)
        ext.wait_for_log(r'upload not delivered: still waiting to retry at shutdown')

    def test_sigterm_drains_and_exits_zero(self):
        self.remote.delay = 0.2
        ext = self.registered(self.start())
        self.assertEqual(push(self.port), 200)
        ext.signal_term()
        self.assertEqual(ext.wait_exit(5), 0)
        # recorded by the remote just after it answered: wait, bounded
        self.assertEqual(len(self.remote.wait_for(1, timeout=5)), 1)

    # -- errors --
    def test_register_failure_exits_non_zero(self):
        self.emu.register_status = 500
        ext = self.start()
        self.assertNotEqual(ext.wait_exit(5), 0)
        ext.wait_for_log(r'level=error msg="register failed" status=500')

    def test_unreachable_api_exits_non_zero(self):
        dead = free_port()
        ext = Extension(env={"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % dead,
                             "PYROSCOPE_RELAY_PORT": str(self.port),
                             "PYROSCOPE_REMOTE_ADDRESS": self.remote.url})
        ext.start(wait_listening=False)
        self.addCleanup(ext.kill)
        self.assertNotEqual(ext.wait_exit(5), 0)
        ext.wait_for_log(r'register failed.*connection refused')

    def test_port_in_use_reports_init_error(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", self.port))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        ext = self.start()
        self.assertNotEqual(ext.wait_exit(5), 0)
        err = self.emu.wait_calls("/init/error", 1)[0]
        self.assertEqual(err.header("Lambda-Extension-Function-Error-Type"), "Extension.ListenFailed")
        self.assertEqual(err.header("Lambda-Extension-Identifier"), self.emu.extension_id)
        self.assertIn(str(self.port), err.json()["errorMessage"])
        ext.wait_for_log(r'cannot listen.*port=%d' % self.port)
        # Registered first, so that the error could be reported.
        self.assertEqual(len(self.emu.calls_to("/register")), 1)

    def test_next_failure_reports_exit_error(self):
        self.emu.next_status = 500
        ext = self.start()
        self.assertNotEqual(ext.wait_exit(5), 0)
        err = self.emu.wait_calls("/exit/error", 1)[0]
        self.assertEqual(err.header("Lambda-Extension-Identifier"), self.emu.extension_id)
        self.assertEqual(err.header("Lambda-Extension-Function-Error-Type"), "Extension.NextFailed")
        ext.wait_for_log(r'event/next failed.*status=500')


if __name__ == "__main__":
    unittest.main()
