"""Self-profiling (PYROSCOPE_SELF_PROFILING) against the real binary in dev mode and a recording
remote: under a real load the extension uploads its own CPU profile as
pyroscope.lambda.extension, in folded format, with the header policy of every upload, with as
many samples as the CPU time it used, naming its own functions; off by default (no SIGPROF
handler at all); the last profile is delivered at SIGTERM.

Run: cd test/integration && PYTHONPATH=../support PLE_BINARY=... python3 -m unittest -v test_selfprof"""
import http.client
import os
import re
import sys
import threading
import time
import unittest
import urllib.parse

from harness import DevModeCase, Extension, free_port
from lambda_emu import LambdaEmulator
from remote import RecordingRemote

APP = "pyroscope.lambda.extension"
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src")
SIGPROF_BIT = 1 << (27 - 1)  # SIGPROF is 27 on x86_64 and aarch64
FOLDED_LINE = re.compile(r"^(.+) (\d+)$")


def functions_defined_in(*files):
    """The names of the functions a C file defines (a line that starts a definition)."""
    names = set()
    rx = re.compile(r"^(?:static\s+)?(?:const\s+)?(?:struct\s+)?\w+[\s*]+(\w+)\(")
    for f in files:
        with open(os.path.join(SRC, f)) as fh:
            for line in fh:
                m = rx.match(line)
                if m:
                    names.add(m.group(1))
    return names


# Every function of src/. Debian's libuv, libcurl and libc keep no frame pointers, so a walk that
# starts in them often stops at once: the relay's own frames show where a walk got through.
OURS = functions_defined_in(*[f for f in os.listdir(SRC) if f.endswith(".c") and f != "main.c"])


def cpu_seconds(pid):
    """utime + stime of the process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def caught_signals(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    return 0


def load(port, seconds, threads=8, body=b"p" * 16384):
    """POSTs profile-sized bodies on keep-alive connections from several threads."""
    deadline = time.monotonic() + seconds
    sent = []
    path = "/ingest?name=load.app%7Bk%3Dv%7D&from=1&until=2&spyName=gospy&sampleRate=100"

    def run():
        n = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            conn.request("POST", path, body, {"Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            r.read()
            n += 1
        conn.close()
        sent.append(n)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 30)
    return sum(sent)


def name_of(rec):
    return urllib.parse.parse_qs(rec.query).get("name", [""])[0]


class SelfProfiling(DevModeCase):
    def profiles(self):
        with self.remote.cond:
            return [r for r in self.remote.requests if name_of(r).startswith(APP)]

    def wait_profiles(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self.remote.cond:
            while True:
                got = [r for r in self.remote.requests if name_of(r).startswith(APP)]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    break
                self.remote.cond.wait(left)
        self.assertGreaterEqual(len(got), count, "self-profiles delivered: %r; log:\n%s"
                                % (got, self.ext.log()))
        return got

    def parse(self, rec):
        """{stack: count} of a folded body; every line must be 'frames count'."""
        stacks = {}
        text = rec.body.decode()
        self.assertTrue(text.endswith("\n"), text[-200:])
        for line in text.splitlines():
            m = FOLDED_LINE.match(line)
            self.assertIsNotNone(m, "not a folded line: %r" % line)
            self.assertNotIn(" ", m.group(1))
            stacks[m.group(1)] = stacks.get(m.group(1), 0) + int(m.group(2))
        return stacks

    def test_profile_under_load(self):
        ext = self.start(PYROSCOPE_SELF_PROFILING="true", PYROSCOPE_SELF_PROFILING_INTERVAL="1s",
                         AWS_LAMBDA_FUNCTION_NAME="selfprof-fn", PYROSCOPE_AUTH_TOKEN="tok-1",
                         PYROSCOPE_TENANT_ID="tenant-1",
                         PYROSCOPE_HTTP_HEADERS='{"X-Extra": "yes"}',
                         PYROSCOPE_LOG_LEVEL="debug")
        ext.wait_for_log(r"self-profiling.*upload_every_ms=1000")
        self.assertTrue(caught_signals(ext.proc.pid) & SIGPROF_BIT, "no SIGPROF handler")
        # Load until the extension has used a second of CPU (about 100 samples): on a loaded
        # machine 3 s of load may give it only 0.4 s, too few samples to be sure to catch our
        # code in the dev build, whose Debian libraries have no frame pointers. Bounded: 15 s.
        sent, deadline = 0, time.monotonic() + 15
        while not sent or (cpu_seconds(ext.proc.pid) < 1.0 and time.monotonic() < deadline):
            sent += load(self.port, 1.5, body=b"p" * 65536)  # larger bodies: more time in our code
        self.assertGreater(sent, 50)
        self.wait_profiles(1)
        cpu = cpu_seconds(ext.proc.pid)
        self.assertEqual(ext.stop(timeout=30), 0, ext.log())
        # The extension exits once the remote has answered; the remote's thread records the
        # request just after: wait until it has no request in hand.
        self.remote.wait_idle(10)
        profiles = self.profiles()
        total, stacks = 0, {}
        for rec in profiles:
            self.assertEqual((rec.method, rec.path), ("POST", "/ingest"))
            p = rec.params
            name = p["name"][0]
            self.assertRegex(name, r"^pyroscope\.lambda\.extension\{.*\bfunction=selfprof-fn\b")
            self.assertRegex(name, r"\b__session_id__=[0-9a-f]{16}\b")
            self.assertEqual(p["sampleRate"], ["100"])
            self.assertEqual(p["spyName"], ["ple-selfprof"])
            self.assertEqual(p["units"], ["samples"])
            self.assertEqual(p["aggregationType"], ["sum"])
            self.assertEqual(p["format"], ["folded"])
            frm, until = int(p["from"][0]), int(p["until"][0])
            self.assertLessEqual(frm, until)
            self.assertLess(abs(until - time.time()), 120)
            self.assertEqual(rec.header("Content-Type"), "text/plain")
            self.assertEqual(rec.header("Authorization"), "Bearer tok-1")
            self.assertEqual(rec.header("X-Scope-OrgID"), "tenant-1")
            self.assertEqual(rec.header("X-Extra"), "yes")
            for s, n in self.parse(rec).items():
                stacks[s] = stacks.get(s, 0) + n
                total += n
        # The same session id as the client uploads got.
        client = [r for r in self.remote.requests if name_of(r).startswith("load.app")]
        sid = re.search(r"__session_id__=(\w+)", name_of(client[0])).group(1)
        self.assertIn("__session_id__=%s" % sid, name_of(profiles[0]))
        # 100 samples a CPU second, within 10%: each sample is weighed by the CPU time since the
        # previous one, so the bursts that ITIMER_PROF's tick-based check misses (0.6x-0.7x of
        # the CPU in signals under this load) are counted. cpu was read just before SIGTERM; the
        # profile misses only the start (before the sampler) and the time since the last signal,
        # hence 50 ms of slack.
        sys.stderr.write("\n  self-profile: %d samples = %.2f s for %.2f CPU s (/proc/PID/stat)"
                         % (total, total / 100.0, cpu))
        self.assertLessEqual(abs(total / 100.0 - cpu), 0.10 * cpu + 0.05,
                             "%d samples for %.2f CPU seconds" % (total, cpu))
        frames = {f for s in stacks for f in s.split(";")}
        self.assertTrue(frames & OURS, "no function of ours among %s" % sorted(frames)[:80])
        # Walked stacks, not only leaves: some stack goes through the relay's read path.
        deep = [s for s in stacks if s.count(";") >= 2 and set(s.split(";")) & OURS]
        self.assertTrue(deep, "no stack of depth >= 3 through our code: %s" % list(stacks)[:20])

    def test_reserve_leaves_room_for_a_largest_client_upload(self):
        # The queue set just above the body limit: the self-profile's reserve must not turn the
        # largest upload a client may send into a 503 that no retry can cure.
        ext = self.start(PYROSCOPE_SELF_PROFILING="true", PYROSCOPE_QUEUE_MAX_BYTES="1048576",
                         PYROSCOPE_MAX_BODY_BYTES="1048064")
        ext.wait_for_log(r"self-profiling")
        body = os.urandom(1048064)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/ingest?name=big.app&from=1&until=2", body=body)
            resp = conn.getresponse()
            resp.read()
        finally:
            conn.close()
        self.assertEqual(resp.status, 200)
        got = [r for r in self.remote.wait_for(1, timeout=10) if r.body == body]
        self.assertEqual(len(got), 1)
        self.assertEqual(ext.stop(timeout=30), 0, ext.log())

    def test_off_by_default(self):
        ext = self.start(PYROSCOPE_LOG_LEVEL="debug")
        self.assertFalse(caught_signals(ext.proc.pid) & SIGPROF_BIT, "SIGPROF handled while off")
        load(self.port, 1.0, threads=2)
        self.assertEqual(ext.stop(timeout=30), 0, ext.log())
        self.assertEqual(self.profiles(), [])
        self.assertNotIn("self-profil", ext.log())

    def test_explicit_false_is_off(self):
        ext = self.start(PYROSCOPE_SELF_PROFILING="false")
        self.assertFalse(caught_signals(ext.proc.pid) & SIGPROF_BIT)
        self.assertEqual(ext.stop(timeout=30), 0, ext.log())

    def test_sigterm_delivers_the_last_profile(self):
        # The period is far away: only the final flush can send it.
        ext = self.start(PYROSCOPE_SELF_PROFILING="true", PYROSCOPE_SELF_PROFILING_INTERVAL="1h",
                         PYROSCOPE_LOG_LEVEL="debug")
        ext.wait_for_log(r"self-profiling")
        load(self.port, 1.5, threads=4)
        self.remote.wait_idle(10)
        self.assertEqual(self.profiles(), [])
        mark = ext.mark()
        self.assertEqual(ext.stop(timeout=30), 0, ext.log())
        self.remote.wait_idle(10)  # recorded just after it answered (see above)
        profiles = self.profiles()
        self.assertEqual(len(profiles), 1, profiles)
        self.assertGreater(sum(self.parse(profiles[0]).values()), 0)
        self.assertNotIn("function=", name_of(profiles[0]))  # AWS_LAMBDA_FUNCTION_NAME unset
        log = "\n".join(ext.log_lines()[mark:])
        # Queued before the drain began, and delivered by it.
        self.assertLess(log.index("self-profile queued"), log.index("draining"), log)
        self.assertRegex(log, r"drained: every accepted upload is finished")

    def test_full_queue_keeps_room_for_the_last_profile(self):
        """Clients fill the queue (the remote holds every answer): they get 503 while 2 of its
        8 places stay free, and the final self-profile queued at SIGTERM takes one of them."""
        self.remote.set_hang()
        ext = self.start(PYROSCOPE_SELF_PROFILING="true", PYROSCOPE_SELF_PROFILING_INTERVAL="1h",
                         PYROSCOPE_QUEUE_MAX_COUNT="8", PYROSCOPE_NUM_WORKERS="1",
                         PYROSCOPE_TIMEOUT="30s", PYROSCOPE_LOG_LEVEL="debug")
        ext.wait_for_log(r"self-profiling")
        statuses = []
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        deadline = time.monotonic() + 60
        # Push until the clients' share is full, then keep pushing (each 503) until the
        # extension has used enough CPU to be sampled.
        while (503 not in statuses or cpu_seconds(ext.proc.pid) < 0.1) and time.monotonic() < deadline:
            conn.request("POST", "/ingest?name=fill.app", b"f" * 65536)
            r = conn.getresponse()
            r.read()
            statuses.append(r.status)
        conn.close()
        self.assertEqual(statuses.count(200), 6, statuses[:20])  # 8 minus the reserve of 2
        self.assertGreaterEqual(cpu_seconds(ext.proc.pid), 0.1)
        mark = ext.mark()
        ext.signal_term()
        ext.wait_for_log(r"self-profile queued.*final=true", timeout=10, after=mark)
        self.remote.release()
        self.assertEqual(ext.wait_exit(60), 0, ext.log())
        self.assertNotIn("self-profile dropped", ext.log())
        self.remote.wait_idle(10)  # recorded just after it answered (see above)
        self.assertEqual(len(self.profiles()), 1, ext.log())
        ext.wait_for_log(r'shutdown summary" accepted=7 relayed=7 failed=0')

    def test_bad_interval_falls_back_to_the_default(self):
        ext = self.start(PYROSCOPE_SELF_PROFILING="true", PYROSCOPE_SELF_PROFILING_INTERVAL="soon")
        ext.wait_for_log(r"PYROSCOPE_SELF_PROFILING_INTERVAL")
        ext.wait_for_log(r"self-profiling.*upload_every_ms=10000")
        self.assertEqual(ext.stop(timeout=30), 0, ext.log())


class SelfProfilingInLambda(unittest.TestCase):
    """The SHUTDOWN event: the last profile goes out within the deadline, like any upload."""

    def test_shutdown_event_delivers_the_last_profile_before_the_deadline(self):
        remote = RecordingRemote().start()
        self.addCleanup(remote.stop)
        emu = LambdaEmulator(function_name="fn-under-test")
        emu.__enter__()
        self.addCleanup(emu.stop)
        port = free_port()
        ext = Extension({"AWS_LAMBDA_RUNTIME_API": emu.address, "PYROSCOPE_RELAY_PORT": port,
                         "PYROSCOPE_REMOTE_ADDRESS": remote.url, "PYROSCOPE_LOG_LEVEL": "debug",
                         "PYROSCOPE_SELF_PROFILING": "true",
                         "AWS_LAMBDA_FUNCTION_NAME": "fn-under-test"})
        ext.start(wait_listening=False)
        self.addCleanup(ext.kill)
        emu.process = ext.proc
        emu.wait_calls("/event/next", 1)
        ext.wait_for_log(r"self-profiling")
        load(port, 1.5, threads=4)
        remote.wait_idle(10)
        ev = emu.shutdown(deadline_in_ms=2000)
        self.assertEqual(ext.wait_exit(5), 0, ext.log())
        self.assertLess(time.time() * 1000, ev["deadlineMs"])
        self.assertFalse(emu.killed)
        with remote.cond:
            profiles = [r for r in remote.requests if name_of(r).startswith(APP)]
        self.assertEqual(len(profiles), 1, ext.log())
        self.assertIn("function=fn-under-test", name_of(profiles[0]))


if __name__ == "__main__":
    unittest.main()
