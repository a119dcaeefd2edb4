"""SnapStart against the real binary: the Extensions API emulator freezes the extension after
init (SIGSTOP) and resumes it (SIGCONT) with the first INVOKE, as a restore from a snapshot; a
recording remote tells TCP connections apart. Every wait is bounded."""
import re
import unittest

from harness import LambdaCase, push
from lambda_emu import LambdaEmulator

SESSION = re.compile(r"__session_id__=([0-9a-f]{16})")


def session_of(rec):
    m = SESSION.search(rec.params["name"][0])
    assert m, rec.params["name"][0]
    return m.group(1)


class SnapStartTest(LambdaCase):
    def start(self, snapstart, **more):
        if snapstart:
            more.update(LambdaEmulator.SNAPSTART_ENV)
        self.ext = super().start(wait_listening=True, **more)

    def push(self, app):
        self.assertEqual(push(self.port, b"main 1\n", "/ingest?name=%s&from=1&until=2" % app), 200)

    def invoke(self):
        n = len(self.emu.calls_to("/event/next"))
        self.emu.invoke()
        self.emu.wait_calls("/event/next", n + 1)

    def init_then_restore(self):
        """An upload during init (delivered on a kept-alive connection), then the snapshot and
        the restore, then invoke 1 with an upload. Returns the two records."""
        self.emu.wait_calls("/event/next", 1)
        self.push("app.init")
        self.remote.wait_for(1, timeout=10)
        self.emu.snapshot_and_restore()
        self.invoke()
        self.push("app.inv1")
        self.remote.wait_for(2, timeout=10)
        return self.remote.requests[0], self.remote.requests[1]

    def test_restore_gives_a_new_session_id_and_fresh_connections(self):
        self.start(snapstart=True)
        init, inv1 = self.init_then_restore()
        line = self.ext.wait_for_log(r'msg="restored from a SnapStart snapshot')
        self.assertIn('source="first event after init"', line)
        self.assertIn("pending_from_snapshot=0", line)
        self.assertIn("snapshot_session_id=%s" % session_of(init), line)
        self.assertNotEqual(session_of(inv1), session_of(init))
        self.assertIn("session_id=%s" % session_of(inv1), line)
        # The connection made during init (before the snapshot) carries nothing after it.
        self.assertNotEqual(inv1.client, init.client)
        self.assertEqual(inv1.conn_seq, 0)
        # Until the restore is seen, no connection outlives its upload: none was in the snapshot.
        self.ext.wait_for_log(r"pre-snapshot connections shut.* connections=0")
        # Stable afterwards: the restore happens once.
        self.invoke()
        self.push("app.inv2")
        self.remote.wait_for(3, timeout=10)
        self.assertEqual(session_of(self.remote.requests[2]), session_of(inv1))
        self.emu.shutdown()
        self.assertEqual(self.ext.wait_exit(10), 0)
        self.assertEqual(sum("restored from a SnapStart" in l for l in self.ext.log_lines()), 1)

    def test_an_upload_in_flight_at_the_snapshot_is_retried_on_a_fresh_connection(self):
        """The remote never answers the upload sent before the snapshot: after the restore it is
        retried on a new connection at once, not after PYROSCOPE_TIMEOUT (60 s here)."""
        self.start(snapstart=True, PYROSCOPE_TIMEOUT="60s")
        self.emu.wait_calls("/event/next", 1)
        self.remote.set_hang(True)
        self.push("app.init")
        first = self.remote.wait_arrivals(1, timeout=10)[0]
        self.remote.set_hang(False)  # the held answer stays held; later ones are answered
        self.emu.snapshot_and_restore()
        self.invoke()
        self.remote.wait_for(1, timeout=20)
        retried = self.remote.requests[0]
        self.assertEqual(session_of(retried), session_of(first))  # made during init: unchanged
        self.assertNotEqual(retried.client, first.client)
        self.assertEqual(retried.conn_seq, 0)
        self.ext.wait_for_log(r'msg="upload failed; will retry"')
        self.ext.wait_for_log(r"restored from a SnapStart snapshot.* pending_from_snapshot=1")
        self.emu.shutdown()
        self.assertEqual(self.ext.wait_exit(10), 0)
        self.ext.wait_for_log(r'msg="shutdown summary" accepted=1 relayed=1 failed=0')

    def test_on_demand_keeps_its_session_and_connection_across_a_freeze(self):
        """The control: without snap-start a freeze is not a restore, and the same test sees the
        same session id and the kept-alive connection reused."""
        self.start(snapstart=False)
        init, inv1 = self.init_then_restore()
        self.assertEqual(session_of(inv1), session_of(init))
        self.assertEqual(inv1.client, init.client)
        self.assertEqual(inv1.conn_seq, 1)
        self.emu.shutdown()
        self.assertEqual(self.ext.wait_exit(10), 0)
        self.assertNotIn("restored from a SnapStart", self.ext.log())

    def test_shutdown_as_the_first_event_after_restore(self):
        self.start(snapstart=True)
        self.emu.wait_calls("/event/next", 1)
        self.push("app.init")
        self.remote.wait_for(1, timeout=10)
        self.emu.snapshot_and_restore()
        self.emu.shutdown()
        self.assertEqual(self.ext.wait_exit(10), 0)
        self.ext.wait_for_log(r'msg="restored from a SnapStart snapshot')
        self.ext.wait_for_log(r'msg="shutdown summary" accepted=1 relayed=1 failed=0')


if __name__ == "__main__":
    unittest.main()
