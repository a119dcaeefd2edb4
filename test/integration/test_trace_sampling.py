"""Trace-sampled profiling against the real binary: the Extensions API emulator sends INVOKE
events with X-Ray trace roots, a recording remote counts what is relayed, and a SigV4-verifying
S3 on 127.0.0.1 (test/support/s3.py) holds the per-trace archive. Every wait is bounded."""
import gzip
import http.client
import random
import re
import unittest
import uuid

from harness import Extension, free_port
from lambda_emu import LambdaEmulator
from pprof import go_client_upload, multipart
from remote import RecordingRemote
from s3 import S3Server

AKID, SECRET, TOKEN = "AKIDTEST", "test/secret+key", "session-token-value"


def root_with(last4):
    return "1-%08x-%s%s" % (0x5759e988, uuid.uuid4().hex[:20], last4)


def fnv16(s):
    """The extension's fallback: 16 bits of FNV-1a 32 over the requestId, folded."""
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return (h ^ (h >> 16)) & 0xFFFF


def inv_index(rec, tag=""):
    """The invoke number in an upload named "<tag>.inv<N>{labels}", or None."""
    m = re.match(r"%s\.?inv(\d+)\{" % re.escape(tag), rec.params["name"][0])
    return int(m.group(1)) if m else None


def push(port, path, body, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class Function:
    """One 'function': an emulator and an extension registered with it."""

    def __init__(self, case, remote, name="demo-function", **env):
        self.emu = LambdaEmulator(function_name=name)
        self.emu.__enter__()
        case.addCleanup(self.emu.stop)
        self.port = free_port()
        base = {"AWS_LAMBDA_RUNTIME_API": self.emu.address, "PYROSCOPE_RELAY_PORT": self.port,
                "PYROSCOPE_REMOTE_ADDRESS": remote.url, "PYROSCOPE_LOG_LEVEL": "debug"}
        base.update(env)
        self.ext = Extension(env=base)
        self.ext.start(wait_listening=True)
        case.addCleanup(self.ext.kill)
        self.emu.process = self.ext.proc
        self.emu.wait_calls("/event/next", 1)

    def invoke(self, **kw):
        """Sends an INVOKE and returns once the extension has taken it (its next poll)."""
        n = len(self.emu.calls_to("/event/next"))
        ev = self.emu.invoke(**kw)
        self.emu.wait_calls("/event/next", n + 1)
        return ev

    def push(self, app, body=b"main;work 1\n"):
        return push(self.port, "/ingest?name=%s&from=1&until=2" % app, body)

    def shutdown(self):
        self.emu.shutdown()
        code = self.ext.wait_exit(10)
        return code


class SampledRelayTest(unittest.TestCase):
    def setUp(self):
        self.remote = RecordingRemote()
        self.remote.start()
        self.addCleanup(self.remote.stop)

    def run_invokes(self, threshold, roots):
        """One upload per invoke; returns the indices of the invokes whose upload was relayed."""
        fn = Function(self, self.remote, PYROSCOPE_TRACE_SAMPLE_THRESHOLD=threshold)
        for i, root in enumerate(roots):
            fn.invoke(trace_root=root)
            self.assertEqual(fn.push("app.inv%d" % i), 200)  # answered 200 either way
        expected = [i for i, r in enumerate(roots) if int(r[-4:], 16) <= threshold]
        self.remote.wait_for(len(expected), timeout=10)
        self.assertEqual(fn.shutdown(), 0)
        got = sorted(inv_index(r, "app") for r in self.remote.requests)
        self.assertEqual(got, expected)
        kept = len(expected)
        fn.ext.wait_for_log(r'msg="shutdown summary" accepted=%d relayed=%d failed=0 rejected=0 '
                            r'pending=0 invokes=%d' % (kept, kept, len(roots)))
        fn.ext.wait_for_log(r'msg="trace sampling summary" invokes_relayed=%d sampled_out=%d'
                            % (kept, len(roots) - kept))
        return got

    def test_thresholds_keep_their_fraction(self):
        rng = random.Random(7)
        roots = [root_with("%04x" % rng.randrange(65536)) for _ in range(150)]
        roots[10] = root_with("0000")  # threshold 0 keeps exactly this one
        self.assertEqual(self.run_invokes(0, roots), [10])
        self.remote.requests.clear()
        half = self.run_invokes(32767, roots)
        self.assertTrue(0.35 < len(half) / len(roots) < 0.65, len(half))
        self.remote.requests.clear()
        self.assertEqual(self.run_invokes(65535, roots), list(range(len(roots))))

    def test_two_functions_of_one_trace_decide_alike(self):
        rng = random.Random(11)
        roots = [root_with("%04x" % rng.randrange(65536)) for _ in range(60)]
        a = Function(self, self.remote, name="fn-a", PYROSCOPE_TRACE_SAMPLE_THRESHOLD=16383)
        b = Function(self, self.remote, name="fn-b", PYROSCOPE_TRACE_SAMPLE_THRESHOLD=16383)
        for i, root in enumerate(roots):
            for fn, tag in ((a, "a"), (b, "b")):
                fn.invoke(trace_root=root)
                self.assertEqual(fn.push("%s.inv%d" % (tag, i)), 200)
        expected = [i for i, r in enumerate(roots) if int(r[-4:], 16) <= 16383]
        self.assertGreater(len(expected), 5)
        self.remote.wait_for(2 * len(expected), timeout=10)
        self.assertEqual(a.shutdown(), 0)
        self.assertEqual(b.shutdown(), 0)
        recs = self.remote.requests
        got_a = sorted(i for i in (inv_index(r, "a") for r in recs) if i is not None)
        got_b = sorted(i for i in (inv_index(r, "b") for r in recs) if i is not None)
        self.assertEqual(got_a, expected)
        self.assertEqual(got_b, expected)

    def test_malformed_tracing_falls_back_to_request_id(self):
        fn = Function(self, self.remote, PYROSCOPE_TRACE_SAMPLE_THRESHOLD=32767)
        bad = ["", "Root=", "Root", "=;=;", "Root=1-abc", "Parent=1;Sampled=1",
               "Root=1-5759e988-bd862e3fe1be46a99427279",  # one digit short
               "Root=1-5759e988-bd862e3fe1be46a99427279z", "\u00e9\u00e9;Root=\u00e9" * 20]
        ids, expected = [], []
        for i in range(40):
            rid = str(uuid.UUID(int=random.Random(i).getrandbits(128)))
            ids.append(rid)
            fn.invoke(request_id=rid, tracing=bad[i % len(bad)])
            self.assertEqual(fn.push("app.inv%d" % i), 200)
            if fnv16(rid) <= 32767:
                expected.append(i)
        self.assertTrue(5 < len(expected) < 35)
        self.remote.wait_for(len(expected), timeout=10)
        self.assertEqual(fn.shutdown(), 0)
        got = sorted(inv_index(r, "app") for r in self.remote.requests)
        self.assertEqual(got, expected)
        fn.ext.wait_for_log(r"no usable X-Ray trace root: sampling on a hash of the requestId")

    def test_uploads_before_the_first_invoke_and_other_requests_are_relayed(self):
        fn = Function(self, self.remote, PYROSCOPE_TRACE_SAMPLE_THRESHOLD=0)
        self.assertEqual(fn.push("app.init"), 200)  # the function's init: no invoke yet
        fn.invoke(trace_root=root_with("ffff"))  # unsampled
        self.assertEqual(fn.push("app.dropped"), 200)
        # Not an ingest: relayed whatever the decision.
        self.assertEqual(push(fn.port, "/render?query=x", b"", {}), 200)
        self.remote.wait_for(2)
        self.assertEqual(fn.shutdown(), 0)
        self.assertEqual(sorted(r.path for r in self.remote.requests), ["/ingest", "/render"])
        self.assertEqual(self.remote.requests[0].params["name"][0].split("{")[0], "app.init")
        fn.ext.wait_for_log(r"sampled_out=1")

    def test_dev_mode_relays_everything(self):
        port = free_port()
        ext = Extension(env={"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                             "PYROSCOPE_REMOTE_ADDRESS": self.remote.url,
                             "PYROSCOPE_TRACE_SAMPLE_THRESHOLD": "0"})
        ext.start()
        self.addCleanup(ext.kill)
        for i in range(5):
            self.assertEqual(push(port, "/ingest?name=app&from=1&until=2", b"x"), 200)
        self.remote.wait_for(5)
        self.assertEqual(ext.stop(), 0)
        ext.wait_for_log(r"sampled_out=0")


class ArchiveTest(unittest.TestCase):
    def setUp(self):
        self.remote = RecordingRemote()
        self.remote.start()
        self.addCleanup(self.remote.stop)
        self.s3_port = free_port()
        self.s3 = S3Server(self.s3_port, ["profiles", "xrayprofile-123456789012-us-east-1"],
                           {AKID: (SECRET, TOKEN)})
        self.s3.__enter__()
        self.addCleanup(self.s3.__exit__, None, None, None)

    def function(self, secret=SECRET, **env):
        base = {"XRAYPROFILE_S3_ENDPOINT": "http://127.0.0.1:%d" % self.s3_port,
                "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": AKID,
                "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": TOKEN}
        base.update(env)
        return Function(self, self.remote, **base)

    def puts(self, n):
        return [r for r in self.s3.wait_for(
            lambda rs: len([r for r in rs if r["method"] == "PUT"]) >= n, timeout=10)
            if r["method"] == "PUT"]

    def test_pprof_part_jfr_part_and_folded_under_the_trace(self):
        fn = self.function(XRAYPROFILE_THRESHOLD="65535", XRAYPROFILE_S3_BUCKET="profiles",
                           XRAYPROFILE_S3_PREFIX="traces")
        root = root_with("01f0")
        rid = str(uuid.uuid4())
        fn.invoke(trace_root=root, request_id=rid)
        path, headers, body = go_client_upload(app="shop.cpu", labels={"env": "prod"})
        pprof_part = body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
        self.assertEqual(push(fn.port, path, body, headers), 200)
        jfr_ct, jfr_body = multipart([("jfr", "jfr", b"FLR\x00jfr-bytes"),
                                      ("labels", "labels", b"\x0a\x00")])
        self.assertEqual(push(fn.port, "/ingest?name=shop.java&format=jfr&from=1&until=2",
                              jfr_body, {"Content-Type": jfr_ct}), 200)
        self.assertEqual(fn.push("shop.folded", b"main;a 3\nmain;b 4\n"), 200)
        # SHUTDOWN at once: the drain waits for the archive's PUTs as for any upload.
        self.assertEqual(fn.shutdown(), 0)
        puts = self.puts(3)
        self.assertEqual(len(puts), 3)
        base = "/profiles/traces/%s/demo-function/%s/" % (root, rid)
        self.assertEqual(sorted(r["path"] for r in puts),
                         sorted([base + "1-shop.cpu.pprof", base + "2-shop.java.jfr",
                                 base + "3-shop.folded.folded"]))
        for r in puts:
            self.assertEqual(r["status"], 200, r)
            self.assertEqual(r["headers"]["x-amz-acl"], "bucket-owner-full-control")
            self.assertNotIn("x-amz-expected-bucket-owner", r["headers"])  # a named bucket
            self.assertEqual(r["headers"]["x-amz-security-token"], TOKEN)
            auth = r["headers"]["authorization"]
            self.assertIn("Credential=%s/" % AKID, auth)
            for h in ("host", "x-amz-acl", "x-amz-content-sha256", "x-amz-date",
                      "x-amz-security-token"):
                self.assertRegex(auth, r"SignedHeaders=[^,]*\b%s\b" % h)
        stored = {k: v[0] for k, v in self.s3.objects.items()}
        pprof = stored[("profiles", base[len("/profiles/"):] + "1-shop.cpu.pprof")]
        self.assertEqual(pprof, pprof_part)  # the profile part alone: go tool pprof opens it
        self.assertGreater(len(gzip.decompress(pprof)), 0)
        self.assertEqual(stored[("profiles", base[len("/profiles/"):] + "2-shop.java.jfr")],
                         b"FLR\x00jfr-bytes")
        self.assertEqual(stored[("profiles", base[len("/profiles/"):] + "3-shop.folded.folded")],
                         b"main;a 3\nmain;b 4\n")
        # The relay is unaffected: no PYROSCOPE_TRACE_SAMPLE_THRESHOLD, everything relayed.
        self.assertEqual(len(self.remote.requests), 3)
        fn.ext.wait_for_log(r'msg="per-trace archive summary" invokes_archived=1 queued=3 '
                            r'archived=3 failed=0 dropped=0')
        fn.ext.wait_for_log(r'msg="shutdown summary" accepted=3 relayed=3 failed=0')

    def test_threshold_and_default_bucket_are_used(self):
        # No bucket: the seed's default, from /register's accountId and AWS_REGION.
        fn = self.function(XRAYPROFILE_THRESHOLD="32767")
        sampled, unsampled = root_with("7fff"), root_with("8000")
        for root, app in ((sampled, "in"), (unsampled, "out"), (sampled, "in2")):
            fn.invoke(trace_root=root)
            self.assertEqual(fn.push("app." + app), 200)
        self.remote.wait_for(3)
        self.assertEqual(fn.shutdown(), 0)
        puts = self.puts(2)
        self.assertEqual(len(puts), 2)
        for r in puts:
            self.assertTrue(r["path"].startswith(
                "/xrayprofile-123456789012-us-east-1/%s/demo-function/" % sampled), r["path"])
            # The default bucket's name is predictable: S3 must check it is the account's own.
            self.assertEqual(r["headers"]["x-amz-expected-bucket-owner"], "123456789012")
            self.assertRegex(r["headers"]["authorization"],
                             r"SignedHeaders=[^,]*\bx-amz-expected-bucket-owner\b")
        self.assertEqual(sorted(p["path"].rsplit("/", 1)[1] for p in puts),
                         ["1-app.in.folded", "1-app.in2.folded"])
        fn.ext.wait_for_log(r"invokes_archived=2 queued=2 archived=2 failed=0")

    def test_bad_secret_is_rejected_and_reported(self):
        fn = self.function(secret="not-the-secret", XRAYPROFILE_S3_BUCKET="profiles")
        fn.invoke(trace_root=root_with("0000"))  # sampled at the default threshold 0
        self.assertEqual(fn.push("app.cpu"), 200)
        puts = self.puts(1)
        self.assertEqual(puts[0]["status"], 403)
        self.assertEqual(puts[0]["error"], "SignatureDoesNotMatch")
        fn.ext.wait_for_log(r'level=error msg="upload failed" id=\d+ to=s3 url="http://127\.0\.0\.1'
                            r':\d+/profiles/[^"]+" status=403 error=SignatureDoesNotMatch')
        self.assertEqual(fn.shutdown(), 0)
        self.assertEqual(self.s3.objects, {})
        self.assertEqual(len(self.remote.requests), 1)  # the relay is unaffected
        fn.ext.wait_for_log(r"archived=0 failed=1 dropped=0")
        self.assertNotIn(SECRET, fn.ext.log())
        self.assertNotIn("not-the-secret", fn.ext.log())
        self.assertNotIn(TOKEN, fn.ext.log())

    def test_s3_slowdown_is_retried(self):
        self.s3.status_override = [503]
        fn = self.function(XRAYPROFILE_S3_BUCKET="profiles")
        fn.invoke(trace_root=root_with("0000"))
        self.assertEqual(fn.push("app.cpu"), 200)
        puts = self.puts(2)
        self.assertEqual([p["status"] for p in puts], [503, 200])
        self.assertEqual(len(self.s3.objects), 1)
        self.assertEqual(fn.shutdown(), 0)
        fn.ext.wait_for_log(r'msg="upload failed; will retry" .*to=s3 .*error=SlowDown')

    def test_flush_on_invoke_awaits_the_archive(self):
        self.s3.delay = 0.5
        fn = self.function(XRAYPROFILE_S3_BUCKET="profiles", PYROSCOPE_FLUSH_ON_INVOKE="true")
        fn.invoke(trace_root=root_with("0000"), timeout_ms=5000)
        self.assertEqual(fn.push("app.cpu"), 200)
        nxt = fn.invoke(trace_root=root_with("ffff"), timeout_ms=5000) and \
            fn.emu.calls_to("/event/next")[-1]
        put = self.puts(1)[0]
        self.assertEqual(put["status"], 200)
        self.assertGreaterEqual(nxt.mono, put["answered"],
                                "next was polled before the archive's PUT finished")
        self.assertEqual(fn.shutdown(), 0)

    def test_archive_off_with_a_clear_error_when_it_cannot_sign(self):
        fn = Function(self, self.remote, XRAYPROFILE_THRESHOLD="65535", AWS_REGION="us-east-1")
        fn.ext.wait_for_log(r'level=error msg="invalid configuration" variable=AWS_ACCESS_KEY_ID '
                            r'.*archive')
        fn.invoke(trace_root=root_with("0000"))
        self.assertEqual(fn.push("app.cpu"), 200)
        self.remote.wait_for(1)
        self.assertEqual(fn.shutdown(), 0)
        self.assertEqual(self.s3.requests, [])


if __name__ == "__main__":
    unittest.main()
