"""The per-trace archive's credentials from the container credentials endpoint
(AWS_CONTAINER_CREDENTIALS_FULL_URI, as Lambda gives SnapStart functions), against the real
binary: a local endpoint (test/support/creds_endpoint.py) serves them, a SigV4-verifying S3
(test/support/s3.py) accepts or refuses the PUTs they sign. Every wait is bounded."""
import os
import tempfile
import unittest
import uuid

from creds_endpoint import CredentialsEndpoint, creds
from harness import Extension, free_port
from remote import RecordingRemote
from s3 import S3Server
from test_trace_sampling import Function, root_with

AUTH = "container-auth-token-" + uuid.uuid4().hex
AK1, SK1, TK1 = "ASIAFIRST", "first/secret+key", "first-session-token-" + uuid.uuid4().hex
AK2, SK2, TK2 = "ASIASECOND", "second/secret+key", "second-session-token-" + uuid.uuid4().hex


class ContainerCredentialsTest(unittest.TestCase):
    def setUp(self):
        self.remote = RecordingRemote()
        self.remote.start()
        self.addCleanup(self.remote.stop)
        self.s3_port = free_port()
        self.s3 = S3Server(self.s3_port, ["profiles"], {AK1: (SK1, TK1), AK2: (SK2, TK2)})
        self.s3.__enter__()
        self.addCleanup(self.s3.__exit__, None, None, None)

    def endpoint(self, answers, token=AUTH):
        ep = CredentialsEndpoint(token, answers)
        ep.__enter__()
        self.addCleanup(ep.__exit__, None, None, None)
        return ep

    def function(self, ep, **env):
        base = {"XRAYPROFILE_S3_ENDPOINT": "http://127.0.0.1:%d" % self.s3_port,
                "XRAYPROFILE_S3_BUCKET": "profiles", "XRAYPROFILE_THRESHOLD": "65535",
                "AWS_REGION": "us-east-1", "AWS_CONTAINER_CREDENTIALS_FULL_URI": ep.uri,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": AUTH}
        base.update(env)
        return Function(self, self.remote, **base)

    def archive_one(self, fn, n):
        """Invoke, push one upload, wait for the n-th S3 request; returns it."""
        fn.invoke(trace_root=root_with("0001"))
        self.assertEqual(fn.push("app"), 200)
        return self.s3.wait_for(lambda rs: len(rs) >= n, timeout=15)[n - 1]

    def assert_no_secret_logged(self, fn):
        log = fn.ext.log()
        for secret in (AUTH, SK1, TK1, SK2, TK2):
            self.assertNotIn(secret, log)

    def test_container_credentials_sign_a_put_that_s3_accepts(self):
        ep = self.endpoint([creds(AK1, SK1, TK1)])
        fn = self.function(ep)
        fn.ext.wait_for_log(r"AWS credentials from the container credentials endpoint")
        self.assertEqual(ep.requests, [])  # lazy: nothing archived yet, nothing fetched
        put = self.archive_one(fn, 1)
        self.assertEqual((put["method"], put["status"], put["error"]), ("PUT", 200, None))
        self.assertIn("Credential=%s/" % AK1, put["headers"]["authorization"])
        self.assertEqual(put["headers"]["x-amz-security-token"], TK1)
        self.assertEqual(ep.requests[0]["authorization"], AUTH)
        # A second upload uses the same credentials: no second fetch.
        self.archive_one(fn, 2)
        self.assertEqual(len(ep.requests), 1)
        self.assertEqual(fn.shutdown(), 0)
        fn.ext.wait_for_log(r'msg="per-trace archive summary".* queued=2 archived=2 failed=0')
        self.assert_no_secret_logged(fn)

    def test_the_token_file_wins_over_the_variable(self):
        path = os.path.join(tempfile.mkdtemp(), "token")
        self.addCleanup(os.unlink, path)
        with open(path, "w") as f:
            f.write("from-the-file-" + AUTH + "\n")  # the trailing newline is not part of it
        ep = self.endpoint([creds(AK1, SK1, TK1)], token="from-the-file-" + AUTH)
        fn = self.function(ep, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=path)
        put = self.archive_one(fn, 1)
        self.assertEqual(put["status"], 200)
        self.assertEqual(fn.shutdown(), 0)
        self.assert_no_secret_logged(fn)

    def test_credentials_are_refreshed_before_they_expire(self):
        ep = self.endpoint([creds(AK1, SK1, TK1, expires_in=8), creds(AK2, SK2, TK2)])
        fn = self.function(ep)
        put = self.archive_one(fn, 1)
        self.assertIn("Credential=%s/" % AK1, put["headers"]["authorization"])
        first = ep.requests[0]["time"]
        # Refreshed in the background, before the first ones expire (8 s after they were made).
        second = ep.wait_requests(2, timeout=15)[1]["time"]
        self.assertLess(second, first + 8)
        # Recorded as the endpoint answers: wait until the extension has taken the new ones.
        fn.ext.wait_for_log(r'msg="AWS credentials fetched"', timeout=10, count=2)
        put = self.archive_one(fn, 2)
        self.assertEqual(put["status"], 200)
        self.assertIn("Credential=%s/" % AK2, put["headers"]["authorization"])
        self.assertEqual(put["headers"]["x-amz-security-token"], TK2)
        self.assertEqual(fn.shutdown(), 0)
        self.assert_no_secret_logged(fn)

    def test_a_5xx_from_the_endpoint_is_tried_again(self):
        ep = self.endpoint([(503, b'{"message":"busy"}'), creds(AK1, SK1, TK1)])
        fn = self.function(ep)
        put = self.archive_one(fn, 1)
        self.assertEqual(put["status"], 200)
        self.assertEqual([r["status"] for r in ep.requests], [503, 200])
        self.assertEqual(fn.shutdown(), 0)

    def test_a_put_waits_for_its_credentials_and_the_flush_waits_for_it(self):
        ep = self.endpoint([creds(AK1, SK1, TK1)])
        ep.delay = 1.5
        fn = self.function(ep, PYROSCOPE_FLUSH_ON_INVOKE="true")
        fn.invoke(trace_root=root_with("0001"))
        self.assertEqual(fn.push("app"), 200)  # its PUT is held until the credentials come
        # Invoke 2's flush (of invoke 1's uploads) waits for the held PUT: it reached S3 before
        # the extension polled /event/next after invoke 2.
        fn.invoke(trace_root=root_with("0001"))
        after_flush = fn.emu.calls_to("/event/next")[-1]
        put = self.s3.wait_for(lambda rs: len(rs) >= 1, timeout=15)[0]
        self.assertEqual(put["status"], 200)
        self.assertLess(put["arrived"], after_flush.mono)
        self.assertGreater(put["arrived"], ep.requests[0]["arrived"] + 1.0)  # it waited
        self.assertEqual(fn.shutdown(), 0)
        fn.ext.wait_for_log(r'msg="per-trace archive summary".* archived=1 failed=0')

    def test_an_endpoint_that_never_answers_fails_the_put_within_its_bound(self):
        ep = self.endpoint([creds(AK1, SK1, TK1)])
        ep.delay = 120
        fn = self.function(ep, PYROSCOPE_TIMEOUT="1s")
        fn.invoke(trace_root=root_with("0001"))
        self.assertEqual(fn.push("app"), 200)
        # Three attempts of at most 1 s each, and short pauses between them.
        line = fn.ext.wait_for_log(r'msg="cannot get AWS credentials for the per-trace archive',
                                   timeout=20)
        self.assertIn("no answer: ", line)
        fn.ext.wait_for_log(r"upload not archived: no AWS credentials to sign it")
        self.assertEqual(fn.shutdown(), 0)
        self.assertEqual(self.s3.requests, [])

    def test_bad_answers_give_a_clear_error_and_no_unsigned_put(self):
        cases = [
            ("wrong token", [creds(AK1, SK1, TK1)],
             "the endpoint answered HTTP 404: cannot get credentials for the provided token"),
            ("401", [(401, b'{"message":"Unauthorized"}')],
             'the endpoint answered HTTP 401: {\\"message\\":\\"Unauthorized\\"}'),
            ("not JSON", [(200, b"<html>oops</html>")], "the answer is not a JSON object"),
            ("no Token", [(200, b'{"AccessKeyId":"A","SecretAccessKey":"s",'
                                b'"Expiration":"2030-01-01T00:00:00Z"}')],
             "the answer has no Token"),
            ("bad Expiration", [(200, b'{"AccessKeyId":"A","SecretAccessKey":"s","Token":"t",'
                                      b'"Expiration":"tomorrow"}')],
             "the answer's Expiration is not an ISO 8601 time"),
            ("expired", [creds(AK1, SK1, TK1, expires_in=-120)],
             "the answer's Expiration is 1"),  # 120 or 121 s in the past
        ]
        for name, answers, why in cases:
            with self.subTest(name):
                self.remote.requests.clear()
                token = "another" if name == "wrong token" else AUTH
                ep = self.endpoint(answers, token=token)
                fn = self.function(ep)
                fn.invoke(trace_root=root_with("0001"))
                self.assertEqual(fn.push("app"), 200)
                line = fn.ext.wait_for_log(
                    r'level=error msg="cannot get AWS credentials for the per-trace archive',
                    timeout=15)
                self.assertIn('error="%s' % why, line)
                self.assertIn(ep.uri, line)
                fn.ext.wait_for_log(r"upload not archived: no AWS credentials to sign it")
                self.remote.wait_for(1)  # the relay itself is unaffected
                self.assertEqual(fn.shutdown(), 0)
                fn.ext.wait_for_log(r'msg="per-trace archive summary".* queued=1 archived=0 '
                                    r'failed=1')
                self.assertEqual(self.s3.requests, [])  # nothing reached S3, signed or not
                self.assertEqual(len(ep.requests), 1)  # not retryable: asked once
                self.assertEqual(sum("cannot get AWS credentials" in l
                                     for l in fn.ext.log_lines()), 1)
                self.assert_no_secret_logged(fn)

    def test_an_unusable_uri_turns_the_archive_off_with_one_error(self):
        port = free_port()
        ext = Extension(env={"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                             "PYROSCOPE_REMOTE_ADDRESS": self.remote.url,
                             "XRAYPROFILE_S3_BUCKET": "profiles", "AWS_REGION": "us-east-1",
                             "AWS_CONTAINER_CREDENTIALS_FULL_URI": "ftp://127.0.0.1/creds"})
        ext.start()
        self.addCleanup(ext.kill)
        line = ext.wait_for_log(r"variable=AWS_CONTAINER_CREDENTIALS_FULL_URI")
        self.assertIn("level=error", line)
        self.assertIn("must start with http:// or https://; the per-trace archive is off", line)
        self.assertEqual(ext.stop(), 0)

    def test_static_keys_win_over_the_endpoint(self):
        ep = self.endpoint([creds(AK2, SK2, TK2)])
        fn = self.function(ep, AWS_ACCESS_KEY_ID=AK1, AWS_SECRET_ACCESS_KEY=SK1,
                           AWS_SESSION_TOKEN=TK1)
        put = self.archive_one(fn, 1)
        self.assertEqual(put["status"], 200)
        self.assertIn("Credential=%s/" % AK1, put["headers"]["authorization"])
        self.assertEqual(ep.requests, [])
        self.assertEqual(fn.shutdown(), 0)


if __name__ == "__main__":
    unittest.main()
