"""The relay in dev mode, against the real binary and a recording remote on loopback: bytes,
paths, queries, headers, HTTP/1.1 features, concurrency, timeouts, logs and the shutdown drain."""
import base64
import gzip
import json
import os
import re
import socket
import time
import unittest
import urllib.parse

from harness import Extension, free_port, has_ipv6_loopback
from remote import RecordingRemote


def http_exchange(port, data, host="127.0.0.1", family=socket.AF_INET, responses=1, timeout=5,
                  body_after_100=None):
    """Sends raw bytes, reads `responses` HTTP responses; returns [(status, headers, body)]."""
    with socket.socket(family) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(data)
        buf = b""
        out = []
        while len(out) < responses:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
            if status == 100:
                out.append((100, headers, b""))
                if body_after_100 is not None:
                    s.sendall(body_after_100)
                continue
            n = int(headers.get("content-length", 0))
            while len(buf) < n:
                buf += s.recv(65536)
            out.append((status, headers, buf[:n]))
            buf = buf[n:]
        return out


def post(path, body, headers=None, version="HTTP/1.1", host="127.0.0.1"):
    head = "POST %s %s\r\nHost: %s\r\nContent-Length: %d\r\n" % (path, version, host, len(body))
    for k, v in (headers or {}).items():
        head += "%s: %s\r\n" % (k, v)
    return head.encode() + b"\r\n" + body


class RelayTest(unittest.TestCase):
    def setUp(self):
        self.remote = RecordingRemote().start()
        self.addCleanup(self.remote.stop)

    def start(self, **env):
        self.port = free_port()
        base = {"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": self.port,
                "PYROSCOPE_REMOTE_ADDRESS": self.remote.url}
        base.update(env)
        self.ext = Extension(base).start()
        self.addCleanup(self.ext.kill)
        return self.ext

    def send(self, data, **kw):
        return http_exchange(self.port, data, **kw)

    # -- bytes, paths and queries --
    def test_bodies_arrive_byte_for_byte(self):
        self.start()
        bodies = [b"", os.urandom(1), os.urandom(70000), os.urandom(1 << 20)]
        for i, body in enumerate(bodies):
            r = self.send(post("/ingest?i=%d" % i, body, {"Content-Type": "application/octet-stream"}))
            self.assertEqual(r[0][0], 200)
        got = self.remote.wait_for(len(bodies))
        self.assertEqual(sorted(len(g.body) for g in got), sorted(len(b) for b in bodies))
        by_query = {g.query: g.body for g in got}
        for i, body in enumerate(bodies):
            self.assertEqual(by_query["i=%d" % i], body)

    def test_every_method_and_path_is_relayed_with_the_query_kept(self):
        self.start()
        self.send(post("/push.v1.PusherService/Push", b"\x1f\x8b proto",
                       {"Content-Type": "application/proto", "Content-Encoding": "gzip"}))
        self.send(b"PUT /any/path?b=2&a=%zz&c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        self.send(b"GET /render?query=x HTTP/1.1\r\nHost: x\r\n\r\n")
        got = {g.method: g for g in self.remote.wait_for(3)}
        push = got["POST"]
        self.assertEqual(push.target, "/push.v1.PusherService/Push")
        self.assertEqual(push.header("Content-Type"), "application/proto")
        self.assertEqual(push.header("Content-Encoding"), "gzip")
        self.assertEqual(push.body, b"\x1f\x8b proto")
        self.assertEqual(got["PUT"].target, "/any/path?b=2&a=%zz&c")
        self.assertEqual(got["GET"].target, "/render?query=x")

    def test_session_id_label_added_sorted_and_stable(self):
        self.start()
        name = urllib.parse.quote("my.app{b=1,a=2}", safe="")
        self.send(post("/ingest?from=1&name=%s&until=2&spyName=gospy" % name, b"p"))
        self.send(post("/ingest?name=other.app", b"p"))
        self.send(post("/ingest?name=bad%7B%7Bapp&x=1", b"p"))
        self.send(post("/ingest?name=" + urllib.parse.quote("a{__session_id__=mine}", safe=""), b"p"))
        # Uploads run concurrently: find each by how its query starts.
        by = {g.query[:10]: g for g in self.remote.wait_for(4)}
        got = [by["from=1&nam"], by["name=other"], by["name=bad%7"], by["name=a%7B_"]]
        first = got[0]
        self.assertTrue(first.query.startswith("from=1&name="))
        self.assertTrue(first.query.endswith("&until=2&spyName=gospy"))
        key = urllib.parse.parse_qs(first.query)["name"][0]
        m = re.fullmatch(r"my\.app\{__session_id__=([0-9a-f]{16}),a=2,b=1\}", key)
        self.assertIsNotNone(m, key)
        key2 = urllib.parse.parse_qs(got[1].query)["name"][0]
        self.assertEqual(key2, "other.app{__session_id__=%s}" % m.group(1))
        self.assertEqual(got[2].query, "name=bad%7B%7Bapp&x=1")  # unparsable: unchanged
        self.assertEqual(got[3].query, "name=" + urllib.parse.quote("a{__session_id__=mine}", safe=""))

    # -- headers --
    def test_header_policy_without_credentials(self):
        self.start()
        self.send(post("/ingest", b"x", {"Authorization": "Bearer client-own", "X-Custom": "1",
                                          "Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1",
                                          "Keep-Alive": "timeout=5", "Proxy-Authorization": "p",
                                          "TE": "trailers", "User-Agent": "ua/1"}, host="localhost:4040"))
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.header("Authorization"), "Bearer client-own")
        self.assertEqual(g.header("X-Forwarded-Host"), "localhost:4040")
        self.assertEqual(g.header("X-Custom"), "1")
        self.assertEqual(g.header("User-Agent"), "ua/1")
        for h in ("X-Drop-Me", "Keep-Alive", "Proxy-Authorization", "TE", "Expect",
                  "Content-Type", "Accept"):
            self.assertIsNone(g.header(h), h)
        self.assertEqual(g.header("Content-Length"), "1")

    def test_token_tenant_and_extra_headers(self):
        self.start(PYROSCOPE_AUTH_TOKEN="tok123", PYROSCOPE_TENANT_ID="tenant-7",
                   PYROSCOPE_BASIC_AUTH_USER="u", PYROSCOPE_BASIC_AUTH_PASSWORD="p",
                   PYROSCOPE_HTTP_HEADERS=json.dumps({"X-Extra": "e1", "X-Custom": "from-config",
                                                      "Authorization": "loses"}))
        self.send(post("/ingest", b"x", {"Authorization": "Bearer client", "X-Scope-OrgID": "client-t",
                                          "X-Custom": "from-client"}))
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.header_all("Authorization"), ["Bearer tok123"])
        self.assertEqual(g.header_all("X-Scope-OrgID"), ["tenant-7"])
        self.assertEqual(g.header_all("X-Custom"), ["from-config"])
        self.assertEqual(g.header("X-Extra"), "e1")

    def test_basic_auth_needs_user_and_password(self):
        self.start(PYROSCOPE_BASIC_AUTH_USER="alice", PYROSCOPE_BASIC_AUTH_PASSWORD="s3cret")
        self.send(post("/ingest", b"x", {"Authorization": "Bearer client"}))
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.header("Authorization"), "Basic " + base64.b64encode(b"alice:s3cret").decode())

    def test_user_without_password_lets_the_client_authorization_pass(self):
        self.start(PYROSCOPE_BASIC_AUTH_USER="alice")
        self.send(post("/ingest", b"x", {"Authorization": "Bearer client"}))
        self.assertEqual(self.remote.wait_for(1)[0].header("Authorization"), "Bearer client")

    # -- HTTP/1.1 --
    def test_keepalive_pipelining_and_remote_connection_reuse(self):
        self.start(PYROSCOPE_NUM_WORKERS=2)
        reqs = b"".join(post("/ingest?n=%d" % i, b"body%d" % i) for i in range(20))
        answers = self.send(reqs, responses=20)
        self.assertEqual([a[0] for a in answers], [200] * 20)
        got = self.remote.wait_for(20)
        self.assertEqual(sorted(g.query for g in got), sorted("n=%d" % i for i in range(20)))
        self.assertLessEqual(len({g.client_port for g in got}), 2, "remote connections not reused")

    def test_chunked_body_is_relayed_dechunked(self):
        self.start()
        data = (b"POST /ingest?c=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
        self.assertEqual(self.send(data)[0][0], 200)
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.body, b"hello world")
        self.assertEqual(g.header("Content-Length"), "11")
        self.assertIsNone(g.header("Transfer-Encoding"))

    def test_expect_100_continue_is_answered_before_the_body(self):
        self.start()
        head = (b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                b"Expect: 100-continue\r\n\r\n")
        answers = self.send(head, responses=2, body_after_100=b"abcd")
        self.assertEqual([a[0] for a in answers], [100, 200])
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.body, b"abcd")
        self.assertIsNone(g.header("Expect"))

    def test_http10_closes_unless_keepalive(self):
        self.start()
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(post("/ingest", b"ten", version="HTTP/1.0"))
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break  # the relay closed the connection, as HTTP/1.0 expects
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)
        answers = self.send(post("/ingest", b"ka", {"Connection": "keep-alive"}, version="HTTP/1.0") * 2,
                            responses=2)
        self.assertEqual([a[0] for a in answers], [200, 200])
        self.assertEqual(answers[0][1].get("connection"), "keep-alive")
        self.assertEqual(len(self.remote.wait_for(3)), 3)

    @unittest.skipUnless(has_ipv6_loopback(), "this host has no ::1")
    def test_ipv6_loopback(self):
        self.start()
        r = http_exchange(self.port, post("/ingest?v6=1", b"six"), host="::1", family=socket.AF_INET6)
        self.assertEqual(r[0][0], 200)
        self.assertEqual(self.remote.wait_for(1)[0].body, b"six")

    def test_never_listens_beyond_loopback(self):
        self.start()
        with open("/proc/net/tcp") as f:
            rows = [l.split() for l in f.readlines()[1:]]
        ours = [r for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == self.port]
        self.assertEqual([r[1].split(":")[0] for r in ours], ["0100007F"])  # 127.0.0.1 only

    # -- bad input --
    def test_malformed_request_gets_400_and_others_keep_working(self):
        self.start()
        r = self.send(b"NOT HTTP AT ALL\r\n\r\n")
        self.assertEqual(r[0][0], 400)
        r = self.send(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        self.assertEqual(r[0][0], 400)
        self.assertEqual(self.send(post("/ingest", b"ok"))[0][0], 200)
        self.assertEqual(self.remote.wait_for(1)[0].body, b"ok")
        self.ext.wait_for_log(r'level=warning msg="malformed request: answered 400"')

    def test_body_over_the_limit_gets_413_without_being_read(self):
        self.start(PYROSCOPE_MAX_BODY_BYTES=1000)
        head = b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"
        r = self.send(head)  # the body is never sent: the answer must come anyway
        self.assertEqual(r[0][0], 413)
        self.assertEqual(self.send(post("/ingest", b"x" * 1000))[0][0], 200)
        self.remote.wait_for(1)

    def test_full_queue_answers_503_with_retry_after(self):
        self.remote.hang = True
        self.start(PYROSCOPE_QUEUE_MAX_COUNT=2, PYROSCOPE_NUM_WORKERS=1, PYROSCOPE_TIMEOUT="2s")
        answers = self.send(b"".join(post("/ingest?n=%d" % i, b"x") for i in range(4)), responses=4)
        self.assertEqual([a[0] for a in answers], [200, 200, 503, 503])
        self.assertEqual(answers[2][1].get("retry-after"), "1")
        self.ext.wait_for_log(r'relay queue full: uploads refused with 503" refused=1 ')
        # A burst of refusals is at most one line a second, not one line each (two lines if
        # this burst happens to straddle a second boundary on a slow machine).
        more = self.send(b"".join(post("/ingest?m=%d" % i, b"x") for i in range(50)), responses=50)
        self.assertEqual({a[0] for a in more}, {503})
        self.assertLessEqual(self.ext.log().count("relay queue full"), 2)

    # -- uploads --
    def test_num_workers_caps_concurrent_uploads(self):
        self.remote.delay = 0.3
        self.start(PYROSCOPE_NUM_WORKERS=2)
        self.send(b"".join(post("/ingest?n=%d" % i, b"x") for i in range(8)), responses=8)
        self.remote.wait_for(8, timeout=10)
        self.assertEqual(self.remote.peak_active, 2)

    def test_timeout_aborts_a_hung_upload(self):
        self.remote.hang = True
        ext = self.start(PYROSCOPE_TIMEOUT="300ms", PYROSCOPE_MAX_RETRIES=0)
        t0 = time.monotonic()
        self.send(post("/ingest", b"x"))
        ext.wait_for_log(r'level=error msg="upload failed".*Operation timed out', timeout=3)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(ext.stop(), 0)
        ext.wait_for_log(r'shutdown summary" accepted=1 relayed=0 failed=1 rejected=0 pending=0')

    def test_remote_error_is_logged_with_status_and_answer(self):
        self.remote.status = 401
        ext = self.start()
        self.send(post("/ingest", b"x"))
        ext.wait_for_log(r'msg="upload failed".* status=401 .*response="remote says no"')

    def test_shutdown_drains_queued_uploads(self):
        self.remote.delay = 0.3
        ext = self.start(PYROSCOPE_NUM_WORKERS=2)
        self.send(b"".join(post("/ingest?n=%d" % i, b"x") for i in range(5)), responses=5)
        self.assertEqual(ext.stop(), 0)
        self.assertEqual(len(self.remote.requests), 5)
        ext.wait_for_log(r'shutdown summary" accepted=5 relayed=5 failed=0 rejected=0 pending=0')

    # -- configuration and logs --
    def test_secrets_never_reach_the_log_at_trace(self):
        secrets = ["tok-%s" % os.urandom(6).hex(), "pw-%s" % os.urandom(6).hex(),
                   "hdr-%s" % os.urandom(6).hex(), "client-%s" % os.urandom(6).hex()]
        self.remote.status = 500
        secrets.append("url-%s" % os.urandom(6).hex())
        userinfo_remote = self.remote.url.replace("http://", "http://u:%s@" % secrets[4])
        ext = self.start(PYROSCOPE_REMOTE_ADDRESS=userinfo_remote,
                         PYROSCOPE_LOG_LEVEL="trace", PYROSCOPE_AUTH_TOKEN=secrets[0],
                         PYROSCOPE_BASIC_AUTH_USER="u", PYROSCOPE_BASIC_AUTH_PASSWORD=secrets[1],
                         PYROSCOPE_HTTP_HEADERS=json.dumps({"X-Key": secrets[2], "bad name": secrets[2]}))
        self.send(post("/ingest", b"x", {"Authorization": "Bearer " + secrets[3]}))
        self.remote.wait_arrivals(1)
        ext.stop()
        log = ext.log()
        self.assertIn("func=", log)  # trace level was on
        self.assertIn('remote="http://***@127.0.0.1', log)
        for s in secrets:
            self.assertNotIn(s, log)

    def test_invalid_values_warn_and_defaults_apply(self):
        ext = self.start(PYROSCOPE_TIMEOUT="bogus", PYROSCOPE_NUM_WORKERS="many",
                         PYROSCOPE_HTTP_HEADERS="{not json", PYROSCOPE_FLUSH_ON_INVOKE="yes")
        ext.wait_for_log(r'level=warning .*variable=PYROSCOPE_TIMEOUT value=bogus default=10s')
        ext.wait_for_log(r'level=warning .*variable=PYROSCOPE_NUM_WORKERS value=many default=5')
        ext.wait_for_log(r'level=warning .*variable=PYROSCOPE_FLUSH_ON_INVOKE value=yes default=false')
        ext.wait_for_log(r'level=error .*variable=PYROSCOPE_HTTP_HEADERS .*invalid JSON')
        self.send(post("/ingest", b"still works"))
        self.assertEqual(self.remote.wait_for(1)[0].body, b"still works")

    def test_json_log_format_and_field_names(self):
        ext = self.start(PYROSCOPE_LOG_FORMAT="json", PYROSCOPE_LOG_MSG_FIELD_NAME="message",
                         PYROSCOPE_LOG_TIMESTAMP_FORMAT="2006-01-02 15:04:05.000")
        ext.stop()
        lines = [json.loads(l) for l in ext.log().splitlines()]
        self.assertTrue(lines)
        for obj in lines:
            self.assertIn("message", obj)
            self.assertIn(obj["level"], ("info", "warning", "error", "debug"))
            self.assertRegex(obj["time"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")

    def test_port_in_use_fails_with_a_clear_error(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        port = blocker.getsockname()[1]
        ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                         "PYROSCOPE_REMOTE_ADDRESS": self.remote.url})
        ext.start(wait_listening=False)
        self.addCleanup(ext.kill)
        self.assertEqual(ext.wait_exit(5), 1)
        ext.wait_for_log(r'level=error msg="cannot listen" .*port=%d error="address already in use"' % port)


class BasePathTest(unittest.TestCase):
    def test_base_path_of_the_remote_is_kept(self):
        remote = RecordingRemote().start()
        self.addCleanup(remote.stop)
        port = free_port()
        ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                         "PYROSCOPE_REMOTE_ADDRESS": remote.url + "/base/"}).start()
        self.addCleanup(ext.kill)
        http_exchange(port, post("/ingest?x=1", b"b"))
        self.assertEqual(remote.wait_for(1)[0].target, "/base/ingest?x=1")


if __name__ == "__main__":
    unittest.main()
