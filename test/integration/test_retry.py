"""Retries: what can succeed later is retried (transport failures, 408, 429, 5xx) with backoff,
Retry-After is followed, a retry after a transport failure uses a fresh connection, other 4xx
fail at once, and the budget is PYROSCOPE_MAX_RETRIES. Includes a freeze (SIGSTOP/SIGCONT) while
an upload is in flight, the way Lambda freezes a sandbox between invokes."""
import os
import signal
import time
import unittest

from harness import DevModeCase, Extension, free_port
from remote import RecordingRemote
from test_relay import http_exchange, post


class RetryTest(DevModeCase):

    def push(self, body=b"profile"):
        self.assertEqual(http_exchange(self.port, post("/ingest?name=app", body))[0][0], 200)

    def test_5xx_then_success_is_delivered(self):
        self.remote.statuses = [503, 500]
        ext = self.start()
        self.push(b"keep me")
        got = self.remote.wait_for(1, timeout=5)
        self.assertEqual(got[0].body, b"keep me")
        self.assertEqual(len(self.remote.arrivals), 3)
        ext.wait_for_log(r'level=warning msg="upload failed; will retry" .*status=503 .*attempt=1')
        self.assertEqual(ext.stop(), 0)
        ext.wait_for_log(r'shutdown summary" accepted=1 relayed=1 failed=0')

    def test_retry_after_is_followed(self):
        self.remote.statuses = [429]
        self.remote.retry_after = 1
        ext = self.start()
        self.push()
        self.remote.wait_for(1, timeout=5)
        first, second = self.remote.arrivals[:2]
        self.assertGreaterEqual(second.arrived - first.arrived, 0.95)
        ext.wait_for_log(r'will retry" .*status=429 .*retry_in_ms=1000')

    def test_other_4xx_fail_once_with_the_answer_logged(self):
        self.remote.status = 401
        ext = self.start()
        self.push()
        ext.wait_for_log(r'level=error msg="upload failed" .*status=401 .*response="remote says no" attempts=1')
        self.assertEqual(ext.stop(), 0)
        self.assertEqual(len(self.remote.arrivals), 1)

    def test_budget_is_max_retries(self):
        self.remote.status = 500
        ext = self.start(PYROSCOPE_MAX_RETRIES=2)
        self.push()
        ext.wait_for_log(r'level=error msg="upload failed" .*status=500 .*attempts=3', timeout=10)
        self.assertEqual(len(self.remote.arrivals), 3)
        self.assertEqual(ext.stop(), 0)
        ext.wait_for_log(r'shutdown summary" accepted=1 relayed=0 failed=1')

    def test_dropped_connection_is_retried_on_a_fresh_one(self):
        self.remote.drop = True
        ext = self.start()
        self.push(b"first")
        self.remote.wait_arrivals(1)
        self.remote.drop = False
        got = self.remote.wait_for(1, timeout=5)
        self.assertEqual(got[0].body, b"first")
        self.assertNotEqual(self.remote.arrivals[0].client_port, got[0].client_port)
        ext.wait_for_log(r'will retry" .*status=0 .*error="Empty reply from server')

    def test_every_accepted_upload_arrives_once_the_remote_comes_up(self):
        port = free_port()
        ext = self.start(remote_url="http://127.0.0.1:%d" % port, PYROSCOPE_MAX_RETRIES=8)
        for i in range(5):
            self.push(b"u%d" % i)
        ext.wait_for_log(r'will retry" .*Could(n\'t| not) connect')
        late = RecordingRemote(port=port).start()
        self.addCleanup(late.stop)
        got = late.wait_for(5, timeout=15)
        self.assertEqual(sorted(g.body for g in got), [b"u%d" % i for i in range(5)])
        self.assertEqual(ext.stop(), 0)
        ext.wait_for_log(r'shutdown summary" accepted=5 relayed=5 failed=0 rejected=0 pending=0')

    def test_upload_in_flight_across_a_freeze_is_delivered(self):
        self.remote.hang = True
        ext = self.start(PYROSCOPE_TIMEOUT="400ms")
        self.push(b"frozen")
        self.remote.wait_arrivals(1)
        os.kill(ext.proc.pid, signal.SIGSTOP)  # Lambda freezes the sandbox
        self.remote.hang = False
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:  # the freeze lasts a second
            time.sleep(0.05)
        os.kill(ext.proc.pid, signal.SIGCONT)  # thaw: every timer is due at once
        got = self.remote.wait_for(1, timeout=10)
        self.assertEqual(got[0].body, b"frozen")
        ext.wait_for_log(r'will retry" .*timed out')
        self.assertEqual(ext.stop(), 0)
        ext.wait_for_log(r'shutdown summary" accepted=1 relayed=1 failed=0')


if __name__ == "__main__":
    unittest.main()
