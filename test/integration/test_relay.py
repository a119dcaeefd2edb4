"""The relay in dev mode, against the real binary and a recording remote on loopback: bodies,
methods, paths, queries and the session label, the header policy, HTTP/1.1 (keep-alive,
pipelining, chunked, 100-continue, HTTP/1.0, IPv6), refusals (400, 413, 503), the upload side
(connection reuse, the worker cap, the timeout), logs (secrets, invalid values, JSON) and the
shutdown drain. Every wait is bounded and waits on an event (a log line, a recorded request).

Run: cd test/integration && PYTHONPATH=../support PLE_BINARY=... python3 -m unittest -v test_relay"""
import base64
import json
import os
import re
import signal
import socket
import time
import unittest
import urllib.parse

from harness import (DevModeCase, Extension, RawClient, chunked, free_port, has_ipv6_loopback,
                     http_exchange, post)
from remote import RecordingRemote

# Re-exported: other suites import these from here.
__all__ = ["http_exchange", "post"]

SESSION = r"__session_id__=([0-9a-f]{16})"


def name_param(query):
    """The decoded value of the `name` query parameter."""
    return urllib.parse.parse_qs(query, keep_blank_values=True)["name"][0]


class RelayCase(DevModeCase):
    """DevModeCase plus raw-socket helpers."""

    def send(self, data, **kw):
        return http_exchange(self.port, data, **kw)

    def push(self, path="/ingest", body=b"x", headers=None, **kw):
        """One request on its own connection; asserts the client got 200 + Content-Length: 0."""
        r = self.send(post(path, body, headers, **kw))
        self.assertEqual(len(r), 1, "no answer from the relay")
        self.assertEqual(r[0].status, 200, r[0])
        return r[0]

    def stop_ok(self, ext=None):
        ext = ext or self.ext
        self.assertEqual(ext.stop(timeout=10), 0, ext.log())


class BodiesPathsQueries(RelayCase):
    def test_bodies_arrive_byte_for_byte(self):
        self.start()
        bodies = [b"", os.urandom(1), os.urandom(70000), os.urandom(1 << 20)]
        for i, body in enumerate(bodies):
            r = self.push("/ingest?i=%d" % i, body, {"Content-Type": "application/octet-stream"})
            self.assertEqual(r.headers.get("content-length"), "0")
            self.assertEqual(r.body, b"")
        got = {g.query: g for g in self.remote.wait_for(len(bodies), timeout=10)}
        self.assertEqual(len(got), len(bodies))
        for i, body in enumerate(bodies):
            g = got["i=%d" % i]
            self.assertEqual(len(g.body), len(body), "i=%d" % i)
            self.assertTrue(g.body == body, "body i=%d changed on the way" % i)
            self.assertEqual(g.header_all("Content-Length"), [str(len(body))])
            self.assertEqual(g.header("Content-Type"), "application/octet-stream")
            self.assertIsNone(g.header("Expect"), "libcurl's Expect: 100-continue reached the remote")
            self.assertIsNone(g.header("Transfer-Encoding"))

    def test_every_method_and_path_is_relayed_with_the_query_kept(self):
        self.start()
        self.push("/push.v1.PusherService/Push", b"\x1f\x8b\x08proto",
                  {"Content-Type": "application/proto", "Content-Encoding": "gzip"})
        odd = "/any/deep/path.x?b=2&a=%zz&c&d=&e=%2F%20+&b=1"
        self.push(odd, b"abc", method="PUT")
        self.push("/render?query=x&from=now-1h", b"", method="GET")
        self.push("/ingest?d=1", b"", method="DELETE")
        self.push("/ingest?p=1", b"patch", method="PATCH")
        got = {g.method: g for g in self.remote.wait_for(5)}
        self.assertEqual(sorted(got), ["DELETE", "GET", "PATCH", "POST", "PUT"])
        push = got["POST"]
        self.assertEqual(push.target, "/push.v1.PusherService/Push")
        self.assertEqual(push.header("Content-Type"), "application/proto")
        self.assertEqual(push.header("Content-Encoding"), "gzip")
        self.assertEqual(push.body, b"\x1f\x8b\x08proto")
        self.assertEqual(got["PUT"].target, odd)
        self.assertEqual(got["PUT"].body, b"abc")
        self.assertEqual(got["GET"].target, "/render?query=x&from=now-1h")
        self.assertEqual(got["GET"].body, b"")
        self.assertEqual(got["DELETE"].target, "/ingest?d=1")
        self.assertEqual(got["PATCH"].body, b"patch")

    def test_base_path_of_the_remote_is_kept(self):
        for base in ("/base", "/base/", "/a/b"):
            with self.subTest(base=base):
                remote = RecordingRemote().start()
                self.addCleanup(remote.stop)
                port = free_port()
                ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                                 "PYROSCOPE_REMOTE_ADDRESS": remote.url + base})
                self.addCleanup(ext.kill)
                ext.start()
                http_exchange(port, post("/ingest?x=1", b"b"))
                http_exchange(port, post("/push.v1.PusherService/Push", b"b"))
                targets = sorted(g.target for g in remote.wait_for(2))
                prefix = base.rstrip("/")
                self.assertEqual(targets, [prefix + "/ingest?x=1",
                                           prefix + "/push.v1.PusherService/Push"])
                ext.kill()

    def test_session_id_label_added_sorted_and_stable(self):
        self.start()
        # The example of the contract: name=app{b=1,a=2} percent-encoded.
        self.push("/ingest?from=1&name=app%7Bb%3D1%2Ca%3D2%7D&until=2&spyName=gospy", b"p")
        self.push("/ingest?name=other.app&x=%41", b"p")
        self.push("/ingest?name=my.app%7Bz%3D9%7D", b"p")
        self.push("/ingest?name=bad%7B%7Bapp&x=1", b"p")            # unparsable
        self.push("/ingest?name=" + urllib.parse.quote("a{__session_id__=mine}", safe=""), b"p")
        self.push("/ingest?aggregationType=sum&format=pprof", b"p")  # no name at all
        # Uploads run concurrently: find each by how its query starts.
        by = {g.query[:12]: g for g in self.remote.wait_for(6)}
        first = by["from=1&name="]
        self.assertTrue(first.query.startswith("from=1&name="), first.query)
        self.assertTrue(first.query.endswith("&until=2&spyName=gospy"), first.query)
        m = re.fullmatch(r"app\{%s,a=2,b=1\}" % SESSION, name_param(first.query))
        self.assertIsNotNone(m, name_param(first.query))
        sid = m.group(1)
        other = by["name=other.a"]
        self.assertEqual(name_param(other.query), "other.app{__session_id__=%s}" % sid)
        self.assertTrue(other.query.endswith("&x=%41"), "other parameters must be kept byte for byte")
        self.assertEqual(name_param(by["name=my.app%"].query), "my.app{__session_id__=%s,z=9}" % sid)
        self.assertEqual(by["name=bad%7B%"].query, "name=bad%7B%7Bapp&x=1")
        self.assertEqual(name_param(by["name=a%7B__s"].query), "a{__session_id__=mine}")
        self.assertEqual(by["aggregationT"].query, "aggregationType=sum&format=pprof")

        # One random id per process: a second process picks another one. Stopped, not killed:
        # the drain reads the remote's answers, so no upload of the first one is left to count.
        self.assertEqual(self.ext.stop(timeout=10), 0, self.ext.log())
        self.start()
        self.push("/ingest?name=app%7Bb%3D1%7D", b"q")
        g = [r for r in self.remote.wait_for(7) if r.body == b"q"][0]
        sid2 = re.fullmatch(r"app\{%s,b=1\}" % SESSION, name_param(g.query)).group(1)
        self.assertNotEqual(sid, sid2)


class HeaderPolicy(RelayCase):
    def test_hop_by_hop_host_and_length_are_not_forwarded(self):
        self.start()
        headers = [("Authorization", "Bearer client-own"), ("X-Custom", "1"),
                   ("Connection", "keep-alive, X-Drop-Me"), ("X-Drop-Me", "1"),
                   ("Keep-Alive", "timeout=5"), ("Proxy-Authorization", "Basic cA=="),
                   ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Trailer", "X-T"),
                   ("Upgrade", "h2c"), ("User-Agent", "ua/1"), ("X-Dup", "a"), ("X-Dup", "b")]
        self.push("/ingest", b"x", headers, host="localhost:4040")
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.header("Authorization"), "Bearer client-own")
        self.assertEqual(g.header_all("X-Forwarded-Host"), ["localhost:4040"])
        self.assertEqual(g.header_all("Host"), ["127.0.0.1:%d" % self.remote.port])
        self.assertEqual(g.header("X-Custom"), "1")
        self.assertEqual(g.header("User-Agent"), "ua/1")
        self.assertEqual(g.header_all("X-Dup"), ["a", "b"], "duplicate client headers, in order")
        self.assertEqual(g.header_all("Content-Length"), ["1"])
        for h in ("X-Drop-Me", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "TE",
                  "Trailer", "Upgrade", "Transfer-Encoding", "Expect", "Content-Type", "Accept",
                  "X-Scope-OrgID"):
            self.assertIsNone(g.header(h), "%s reached the remote: %r" % (h, g.headers))
        # Connection, if any, is libcurl's own, never the client's list.
        for v in g.header_all("Connection"):
            self.assertNotIn("x-drop-me", v.lower())

    def test_content_type_and_encoding_pass_and_nothing_is_invented(self):
        self.start()
        self.push("/ingest?a=1", b"x", {"Content-Type": "multipart/form-data; boundary=XyZ",
                                         "Content-Encoding": "gzip"})
        self.push("/ingest?a=2", b"y")
        got = {g.query: g for g in self.remote.wait_for(2)}
        self.assertEqual(got["a=1"].header_all("Content-Type"), ["multipart/form-data; boundary=XyZ"])
        self.assertEqual(got["a=1"].header_all("Content-Encoding"), ["gzip"])
        for h in ("Content-Type", "Content-Encoding", "Accept", "Expect", "Authorization"):
            self.assertIsNone(got["a=2"].header(h), h)

    def test_token_and_tenant_win_over_everything(self):
        self.start(PYROSCOPE_AUTH_TOKEN="tok123", PYROSCOPE_TENANT_ID="tenant-7",
                   PYROSCOPE_BASIC_AUTH_USER="u", PYROSCOPE_BASIC_AUTH_PASSWORD="p",
                   PYROSCOPE_HTTP_HEADERS=json.dumps({"X-Extra": "e1", "X-Custom": "from-config",
                                                      "Authorization": "loses",
                                                      "X-Scope-OrgID": "loses-too"}))
        self.push("/ingest", b"x", [("Authorization", "Bearer client"), ("X-Scope-OrgID", "client-t"),
                                    ("x-custom", "from-client"), ("X-Other", "kept")])
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.header_all("Authorization"), ["Bearer tok123"])
        self.assertEqual(g.header_all("X-Scope-OrgID"), ["tenant-7"])
        self.assertEqual(g.header_all("X-Custom"), ["from-config"])
        self.assertEqual(g.header_all("X-Extra"), ["e1"])
        self.assertEqual(g.header_all("X-Other"), ["kept"])

    def test_extra_headers_are_set_on_every_upload(self):
        self.start(PYROSCOPE_HTTP_HEADERS=json.dumps({"X-Extra": "e1", "X-Scope-OrgID": "from-config"}))
        self.push("/ingest?n=1", b"x")
        self.push("/ingest?n=2", b"x", {"X-Scope-OrgID": "client", "X-Extra": "client"})
        for g in self.remote.wait_for(2):
            self.assertEqual(g.header_all("X-Extra"), ["e1"], g.query)
            self.assertEqual(g.header_all("X-Scope-OrgID"), ["from-config"], g.query)

    def test_tenant_replaces_the_client_one_and_client_authorization_passes(self):
        self.start(PYROSCOPE_TENANT_ID="t-1")
        self.push("/ingest", b"x", {"X-Scope-OrgID": "client-t", "Authorization": "Basic Y2xpZW50"})
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.header_all("X-Scope-OrgID"), ["t-1"])
        self.assertEqual(g.header_all("Authorization"), ["Basic Y2xpZW50"])

    def test_basic_auth_needs_user_and_password(self):
        self.start(PYROSCOPE_BASIC_AUTH_USER="alice", PYROSCOPE_BASIC_AUTH_PASSWORD="s3cret:x")
        self.push("/ingest", b"x", {"Authorization": "Bearer client"})
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.header_all("Authorization"),
                         ["Basic " + base64.b64encode(b"alice:s3cret:x").decode()])

    def test_user_or_password_alone_lets_the_client_authorization_pass(self):
        for i, env in enumerate(({"PYROSCOPE_BASIC_AUTH_USER": "alice"},
                                 {"PYROSCOPE_BASIC_AUTH_PASSWORD": "pw"})):
            with self.subTest(env=env):
                ext = self.start(**env)
                self.push("/ingest?case=%d" % i, b"x", {"Authorization": "Bearer client"})
                g = [r for r in self.remote.wait_for(i + 1) if r.query == "case=%d" % i][0]
                self.assertEqual(g.header_all("Authorization"), ["Bearer client"])
                # Stored as the remote answers: the drain lets the extension read that answer
                # before it exits, so the next case's count is not short of this one.
                self.assertEqual(ext.stop(timeout=10), 0, ext.log())


class Http11(RelayCase):
    def test_client_is_answered_before_the_remote(self):
        self.remote.set_hang()
        self.start()
        t0 = time.monotonic()
        r = self.push("/ingest?early=1", b"x")
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual((r.version, r.status, r.headers.get("content-length")), ("HTTP/1.1", 200, "0"))
        self.remote.wait_arrivals(1)
        self.assertEqual(self.remote.requests, [], "the remote had not answered yet")
        self.remote.release()
        self.assertEqual(self.remote.wait_for(1)[0].query, "early=1")

    def test_keepalive_many_requests_on_one_connection(self):
        self.start()
        with RawClient(self.port) as c:
            for i in range(10):
                c.send(post("/ingest?k=%d" % i, b"k%d" % i))
                r = c.read_response()
                self.assertIsNotNone(r, "the relay closed a keep-alive connection after %d" % i)
                self.assertEqual((r.status, r.headers.get("content-length")), (200, "0"))
        got = self.remote.wait_for(10)
        self.assertEqual(sorted(g.body for g in got), sorted(b"k%d" % i for i in range(10)))

    def test_pipelined_requests_are_answered_in_order(self):
        self.start(PYROSCOPE_MAX_BODY_BYTES=1000)
        reqs = b"".join(post("/ingest?n=%d" % i, b"body%d" % i) for i in range(20))
        # The last one is over the body limit: its 413 must come last, after twenty 200s.
        reqs += b"POST /ingest?n=big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
        answers = self.send(reqs, responses=21)
        self.assertEqual([a.status for a in answers], [200] * 20 + [413])
        got = self.remote.wait_for(20)
        self.assertEqual(sorted(g.query for g in got), sorted("n=%d" % i for i in range(20)))
        self.assertEqual({g.query: g.body for g in got}["n=7"], b"body7")

    def test_remote_connections_are_reused(self):
        self.start(PYROSCOPE_NUM_WORKERS=3)
        for i in range(30):
            self.push("/ingest?s=%d" % i, b"s")
            self.remote.wait_for(i + 1)  # sequential: one upload at a time
        got = self.remote.wait_for(30)
        ports = {g.client for g in got}
        self.assertLessEqual(len(ports), 3, "30 sequential uploads used %d remote connections"
                             % len(ports))
        self.assertGreaterEqual(sum(g.conn_seq > 0 for g in got), 27)

    def test_chunked_body_is_relayed_dechunked(self):
        self.start()
        data = (b"POST /ingest?c=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
        big = os.urandom(300000)
        parts = [big[i:i + n] for i, n in zip(range(0, len(big), 7000), [7000] * 100)]
        data += (b"POST /ingest?c=2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Type: application/octet-stream\r\n\r\n" + chunked(parts))
        self.assertEqual([a.status for a in self.send(data, responses=2)], [200, 200])
        got = {g.query: g for g in self.remote.wait_for(2)}
        self.assertEqual(got["c=1"].body, b"hello world")
        self.assertEqual(got["c=1"].header_all("Content-Length"), ["11"])
        self.assertTrue(got["c=2"].body == big, "chunked body changed on the way")
        self.assertEqual(got["c=2"].header_all("Content-Length"), [str(len(big))])
        for g in got.values():
            self.assertIsNone(g.header("Transfer-Encoding"))

    def test_expect_100_continue_is_answered_before_the_body(self):
        self.start()
        with RawClient(self.port) as c:
            c.send(b"POST /ingest?e=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            r = c.read_response()  # nothing of the body has been sent yet
            self.assertIsNotNone(r)
            self.assertEqual((r.version, r.status), ("HTTP/1.1", 100))
            self.assertTrue(r.raw.startswith(b"HTTP/1.1 100 Continue\r\n"), r.raw)
            c.send(b"abcd")
            self.assertEqual(c.read_response().status, 200)
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.body, b"abcd")
        self.assertIsNone(g.header("Expect"))

    def test_http10_closes_unless_keepalive(self):
        self.start()
        with RawClient(self.port) as c:
            c.send(post("/ingest?v=10", b"ten", version="HTTP/1.0"))
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertTrue(c.closed_by_peer(), "an HTTP/1.0 connection must be closed after the answer")
        with RawClient(self.port) as c:
            for i in range(2):
                c.send(post("/ingest?ka=%d" % i, b"ka", {"Connection": "keep-alive"}, version="HTTP/1.0"))
                r = c.read_response()
                self.assertIsNotNone(r, "closed despite Connection: keep-alive")
                self.assertEqual(r.status, 200)
                self.assertEqual(r.headers.get("connection", "").lower(), "keep-alive")
        got = sorted(g.query for g in self.remote.wait_for(3))
        self.assertEqual(got, ["ka=0", "ka=1", "v=10"])

    @unittest.skipUnless(has_ipv6_loopback(), "this host has no ::1")
    def test_ipv6_loopback(self):
        ext = self.start()
        ext.wait_for_log(r'relay listening.*\[::1\]:%d\b' % self.port)
        r = http_exchange(self.port, post("/ingest?v6=1", b"six", host="[::1]:%d" % self.port),
                          host="::1")
        self.assertEqual(r[0].status, 200)
        g = self.remote.wait_for(1)[0]
        self.assertEqual((g.query, g.body), ("v6=1", b"six"))
        self.assertEqual(g.header("X-Forwarded-Host"), "[::1]:%d" % self.port)

    def test_never_listens_beyond_loopback(self):
        self.start()

        def listeners(table):
            try:
                with open(table) as f:
                    rows = [l.split() for l in f.readlines()[1:]]
            except FileNotFoundError:
                return []
            return [r[1].split(":")[0] for r in rows
                    if r[3] == "0A" and int(r[1].split(":")[1], 16) == self.port]

        self.assertEqual(listeners("/proc/net/tcp"), ["0100007F"])  # 127.0.0.1 only
        v6 = listeners("/proc/net/tcp6")
        self.assertTrue(set(v6) <= {"00000000000000000000000001000000"}, v6)  # ::1 only


class Refusals(RelayCase):
    def test_malformed_request_gets_400_closes_and_others_keep_working(self):
        self.start()
        for bad in (b"NOT HTTP AT ALL\r\n\r\n",
                    b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                    b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            with self.subTest(bad=bad), RawClient(self.port) as c:
                c.send(bad)
                r = c.read_response()
                self.assertIsNotNone(r, "no answer to a malformed request")
                self.assertEqual(r.status, 400)
                self.assertTrue(c.closed_by_peer(), "connection must be closed after a 400")
        self.push("/ingest", b"ok")
        self.assertEqual([g.body for g in self.remote.wait_for(1)], [b"ok"])
        self.assertEqual(len(self.remote.arrivals), 1, "a malformed request was relayed")

    def test_body_over_the_limit_gets_413_without_being_read(self):
        self.start(PYROSCOPE_MAX_BODY_BYTES=1000)
        head = b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"
        r = self.send(head)  # the body is never sent: the answer must come anyway
        self.assertEqual(r[0].status, 413)
        self.push("/ingest", b"x" * 1000)  # exactly at the limit is fine
        self.assertEqual(len(self.remote.wait_for(1)[0].body), 1000)
        self.assertEqual(len(self.remote.arrivals), 1)

    def test_full_queue_answers_503_with_retry_after(self):
        self.remote.set_hang()
        self.start(PYROSCOPE_QUEUE_MAX_COUNT=2, PYROSCOPE_NUM_WORKERS=1)
        answers = self.send(b"".join(post("/ingest?n=%d" % i, b"x") for i in range(4)), responses=4)
        self.assertEqual([a.status for a in answers], [200, 200, 503, 503])
        self.assertRegex(answers[2].headers.get("retry-after", ""), r"^[1-9][0-9]*$")
        self.remote.release()
        got = self.remote.wait_for(2)
        self.assertEqual(sorted(g.query for g in got), ["n=0", "n=1"])
        self.stop_ok()
        self.ext.wait_for_log(r'msg="shutdown summary" accepted=2 relayed=2 failed=0 rejected=2 pending=0')


    def test_refused_bodies_are_skipped_and_the_connection_stays_in_step(self):
        # Refused at their headers while the queue is full, their bodies are read and dropped;
        # what follows on the same connection is parsed as the next request.
        self.remote.set_hang()
        self.start(PYROSCOPE_QUEUE_MAX_COUNT=1, PYROSCOPE_NUM_WORKERS=1,
                   PYROSCOPE_LOG_LEVEL="debug")
        a, b, e = os.urandom(20000), os.urandom(30000), os.urandom(20000)
        refused_chunked = (b"POST /ingest?n=c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                           b"\r\n\r\n" + chunked([b"\r\nPOST /evil HTTP/1.1\r\n", os.urandom(9000)]))
        with RawClient(self.ext.port) as c:
            c.send(post("/ingest?n=a", a) + post("/ingest?n=b", b) + refused_chunked +
                   post("/ingest?n=d", b"POST /x HTTP/1.1\r\n\r\n"))
            self.assertEqual([r.status for r in c.read_responses(4)], [200, 503, 503, 503])
            self.remote.release()
            # The remote stores n=a as it answers; its queue slot is free once the extension has
            # read that answer.
            self.ext.wait_for_log(r'msg="upload relayed" .*/ingest\?n=a"')
            c.send(post("/ingest?n=e", e))
            self.assertEqual(c.read_responses(1)[0].status, 200)
        got = {g.query: g.body for g in self.remote.wait_for(2)}
        self.assertEqual(got, {"n=a": a, "n=e": e})
        self.stop_ok()
        self.ext.wait_for_log(r'msg="shutdown summary" accepted=2 relayed=2 failed=0 rejected=3 '
                              r'pending=0')


class Uploads(RelayCase):
    def test_num_workers_caps_concurrent_uploads(self):
        self.remote.set_delay(0.3)
        self.start(PYROSCOPE_NUM_WORKERS=2)
        answers = self.send(b"".join(post("/ingest?n=%d" % i, b"x") for i in range(10)), responses=10)
        self.assertEqual([a.status for a in answers], [200] * 10)
        self.remote.wait_for(10, timeout=10)
        self.assertEqual(self.remote.peak, 2)

    def test_timeout_aborts_a_hung_upload(self):
        self.remote.set_hang()
        ext = self.start(PYROSCOPE_TIMEOUT="300ms", PYROSCOPE_MAX_RETRIES=0)
        t0 = time.monotonic()
        self.push("/ingest?hung=1", b"x")
        line = ext.wait_for_log(r'level=error msg="upload failed"', timeout=5)
        self.assertLess(time.monotonic() - t0, 2.0, "PYROSCOPE_TIMEOUT=300ms not applied")
        self.assertIn('url="%s/ingest?hung=1"' % self.remote.url, line)
        self.assertRegex(line, r" status=")
        self.stop_ok(ext)
        ext.wait_for_log(r'msg="shutdown summary" accepted=1 relayed=0 failed=[1-9]')

    def test_remote_error_is_logged_with_url_and_status(self):
        self.remote.respond(401)
        ext = self.start()
        self.push("/ingest?e=401", b"x")
        line = ext.wait_for_log(r'level=error msg="upload failed"')
        self.assertIn(" status=401", line)
        self.assertIn('url="%s/ingest?e=401"' % self.remote.url, line)
        self.stop_ok(ext)
        ext.wait_for_log(r'msg="shutdown summary" accepted=1 relayed=0 failed=1 rejected=0 pending=0')

    def test_shutdown_drains_queued_uploads(self):
        self.remote.set_delay(0.5)
        ext = self.start(PYROSCOPE_NUM_WORKERS=2)
        answers = self.send(b"".join(post("/ingest?n=%d" % i, b"d%d" % i) for i in range(5)),
                            responses=5)
        self.assertEqual([a.status for a in answers], [200] * 5)
        self.remote.wait_arrivals(1)  # the first uploads are in flight, the others queued
        delivered_before = len(self.remote.requests)
        t0 = time.monotonic()
        self.assertEqual(ext.stop(signal.SIGTERM, timeout=10), 0, ext.log())
        self.assertLess(delivered_before, 5, "the test must signal while uploads are pending")
        self.assertEqual(sorted(g.body for g in self.remote.requests),
                         [b"d%d" % i for i in range(5)])
        self.assertGreater(time.monotonic() - t0, 0.4, "exit came before the drain could finish")
        ext.wait_for_log(r'msg="shutdown summary" accepted=5 relayed=5 failed=0 rejected=0 pending=0')

    def test_shutdown_drain_is_bounded_by_the_timeout(self):
        self.remote.set_hang()
        ext = self.start(PYROSCOPE_TIMEOUT="500ms", PYROSCOPE_MAX_RETRIES=0)
        self.push("/ingest?stuck=1", b"x")
        self.remote.wait_arrivals(1)
        t0 = time.monotonic()
        self.assertEqual(ext.stop(signal.SIGTERM, timeout=5), 0, ext.log())
        self.assertLess(time.monotonic() - t0, 3.0)
        ext.wait_for_log(r'msg="shutdown summary" accepted=1 relayed=0 ')

    def test_sigterm_right_after_listening_exits_0(self):
        # "relay listening" is the readiness signal: a SIGTERM from then on is a clean shutdown,
        # never death by the default action of the signal (exit code -15).
        codes = []
        for _ in range(20):
            ext = self.start()
            codes.append(ext.stop(timeout=5))
            ext.kill()
        self.assertEqual(codes, [0] * 20, "exit codes of SIGTERM sent right after listening")

    def test_sigint_also_shuts_down_cleanly(self):
        ext = self.start()
        self.push("/ingest", b"i")
        self.remote.wait_for(1)
        self.assertEqual(ext.stop(signal.SIGINT), 0, ext.log())
        ext.wait_for_log(r'msg="shutdown summary" accepted=1 relayed=1 failed=0 rejected=0 pending=0')


class Logs(RelayCase):
    def test_secrets_never_reach_the_log_at_trace(self):
        rnd = lambda tag: "%s-%s" % (tag, os.urandom(8).hex())
        token, password, hdr, client, userinfo = (rnd("tok"), rnd("pw"), rnd("hdr"), rnd("client"),
                                                  rnd("url"))
        secrets = [token, password, hdr, client, userinfo,
                   base64.b64encode(("u:" + password).encode()).decode()]
        self.remote.respond(500, count=1)  # the error path logs too
        remote_url = self.remote.url.replace("http://", "http://u:%s@" % userinfo)
        ext = self.start(remote_url=remote_url, PYROSCOPE_LOG_LEVEL="trace",
                         PYROSCOPE_AUTH_TOKEN=token, PYROSCOPE_BASIC_AUTH_USER="u",
                         PYROSCOPE_BASIC_AUTH_PASSWORD=password,
                         PYROSCOPE_HTTP_HEADERS=json.dumps({"X-Key": hdr, "X-Other": hdr + "2"}))
        self.push("/ingest?name=app", b"x", {"Authorization": "Bearer " + client})
        self.push("/ingest?s=2", b"y", {"Authorization": "Basic " + client})
        self.remote.wait_for(2, timeout=10)
        self.stop_ok(ext)
        log = ext.log()
        self.assertRegex(log, r"level=trace", "trace level was not on")
        for s in secrets:
            self.assertNotIn(s, log)

    def test_invalid_values_warn_and_the_relay_still_works(self):
        ext = self.start(PYROSCOPE_TIMEOUT="bogus", PYROSCOPE_NUM_WORKERS="many",
                         PYROSCOPE_HTTP_HEADERS="{not json", PYROSCOPE_FLUSH_ON_INVOKE="yes",
                         PYROSCOPE_QUEUE_MAX_COUNT="-3")
        for var in ("PYROSCOPE_TIMEOUT", "PYROSCOPE_NUM_WORKERS", "PYROSCOPE_FLUSH_ON_INVOKE",
                    "PYROSCOPE_QUEUE_MAX_COUNT"):
            ext.wait_for_log(r'level=warning .*\b%s\b' % var)
        ext.wait_for_log(r'level=error .*\bPYROSCOPE_HTTP_HEADERS\b')
        self.push("/ingest", b"still works")
        g = self.remote.wait_for(1)[0]
        self.assertEqual(g.body, b"still works")
        self.stop_ok(ext)

    def test_json_log_lines(self):
        ext = self.start(PYROSCOPE_LOG_FORMAT="json", PYROSCOPE_TIMEOUT="bogus")
        self.push("/ingest", b"j")
        self.remote.wait_for(1)
        self.stop_ok(ext)
        lines = ext.log_lines()
        self.assertTrue(lines)
        objs = []
        for l in lines:
            try:
                objs.append(json.loads(l))
            except ValueError:
                self.fail("not a JSON log line: %r" % l)
        for obj in objs:
            self.assertIsInstance(obj, dict)
            for k in ("time", "level", "msg"):
                self.assertIn(k, obj, obj)
        listening = [o for o in objs if o["msg"] == "relay listening"]
        self.assertIn("127.0.0.1:%d" % self.port, [o.get("address") for o in listening])
        self.assertTrue(any(o["level"] == "warning" and "PYROSCOPE_TIMEOUT" in json.dumps(o)
                            for o in objs))
        self.assertTrue(any(o["msg"] == "shutdown summary" and o.get("relayed") in (1, "1")
                            for o in objs))

    def test_json_log_field_names_and_timestamp_layout(self):
        ext = self.start(PYROSCOPE_LOG_FORMAT="json", PYROSCOPE_LOG_MSG_FIELD_NAME="message",
                         PYROSCOPE_LOG_TIMESTAMP_FORMAT="2006-01-02 15:04:05.000")
        self.stop_ok(ext)
        lines = [json.loads(l) for l in ext.log_lines()]
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
        self.addCleanup(ext.kill)
        ext.start(wait_listening=False)
        self.assertNotEqual(ext.wait_exit(5), 0)
        ext.wait_for_log(r'level=error .*%d.*address already in use' % port)


if __name__ == "__main__":
    unittest.main()
