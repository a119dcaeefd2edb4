"""Hostile and broken clients: a client that stalls mid-request, too many connections, headers
over the limit. The relay answers clearly, keeps serving everyone else, and never mistakes a
Lambda freeze for a stalled client."""
import os
import signal
import socket
import time
import unittest

from harness import DevModeCase, Extension, free_port
from remote import RecordingRemote
from test_relay import http_exchange, post


def read_all(sock, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class LimitsTest(DevModeCase):

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.addCleanup(s.close)
        return s

    def test_stalled_client_gets_408_and_others_are_served(self):
        ext = self.start(PYROSCOPE_CLIENT_TIMEOUT="1s")
        slow = self.connect()
        slow.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
        t0 = time.monotonic()
        # Meanwhile another client is served normally.
        self.assertEqual(http_exchange(self.port, post("/ingest?ok=1", b"fine"))[0][0], 200)
        answer = read_all(slow)  # the relay answers and closes
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer)
        self.assertLess(time.monotonic() - t0, 4.0)
        ext.wait_for_log(r'client stalled in the middle of a request: answered 408')
        self.assertEqual([g.body for g in self.remote.wait_for(1)], [b"fine"])

    def test_idle_keepalive_connection_is_not_closed(self):
        self.start(PYROSCOPE_CLIENT_TIMEOUT="1s")
        s = self.connect()
        s.sendall(post("/ingest?n=1", b"a"))
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        # Idle between requests for longer than the client timeout: still usable.
        self.remote.wait_for(1)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            time.sleep(0.1)
        s.sendall(post("/ingest?n=2", b"b"))
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        self.remote.wait_for(2)

    def test_a_freeze_is_not_a_stall(self):
        ext = self.start(PYROSCOPE_CLIENT_TIMEOUT="2s")
        s = self.connect()
        s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nfroz")
        ext.wait_for_log(r'relay listening')
        os.kill(ext.proc.pid, signal.SIGSTOP)  # client and extension frozen together
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(ext.proc.pid, signal.SIGCONT)
        s.sendall(b"en!!")  # the client goes on right after the thaw
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        self.assertEqual(self.remote.wait_for(1)[0].body, b"frozen!!")

    def test_connections_over_the_limit_are_closed_and_others_work(self):
        ext = self.start(PYROSCOPE_MAX_CONNECTIONS=2)
        a, b = self.connect(), self.connect()
        a.sendall(post("/ingest?c=a", b"a"))  # both are really accepted and served
        self.assertTrue(a.recv(4096).startswith(b"HTTP/1.1 200"))
        b.sendall(post("/ingest?c=b", b"b"))
        self.assertTrue(b.recv(4096).startswith(b"HTTP/1.1 200"))
        c = self.connect()
        self.assertEqual(read_all(c), b"")  # closed without a word
        ext.wait_for_log(r'too many client connections: new ones closed" closed=1 limit=2')
        a.close()
        ext_ok = False
        for _ in range(50):  # the slot frees once the relay has seen the close
            try:
                if http_exchange(self.port, post("/ingest?c=d", b"d"))[0][0] == 200:
                    ext_ok = True
                    break
            except (ConnectionError, IndexError):
                pass
            time.sleep(0.05)
        self.assertTrue(ext_ok)
        self.assertEqual(len(self.remote.wait_for(3)), 3)

    def test_out_of_descriptors_does_not_spin_and_recovers(self):
        self.port = free_port()
        ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": self.port,
                         "PYROSCOPE_REMOTE_ADDRESS": self.remote.url,
                         "PYROSCOPE_MAX_CONNECTIONS": 1000}).start(max_fds=40)
        self.addCleanup(ext.kill)
        held = []
        for _ in range(60):  # more than the process has descriptors for
            held.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
        # Past the limit, libuv accepts and drops connections with its reserve descriptor: some
        # of ours are closed under us instead of piling up in the backlog.
        closed = 0
        for sock in held[-20:]:  # the newest ones are past the limit
            sock.settimeout(2)
            try:
                closed += sock.recv(1) == b""
            except ConnectionError:
                closed += 1
            except socket.timeout:
                pass  # still open: accepted before the descriptors ran out
        self.assertGreater(closed, 0)
        cpu0 = self._cpu(ext)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertLess(self._cpu(ext) - cpu0, 0.2, "the relay spins while out of descriptors")
        for s in held:
            s.close()
        ok = False
        for _ in range(50):  # descriptors come back as the relay sees the closes
            try:
                ok = http_exchange(self.port, post("/ingest?after=emfile", b"x"))[0][0] == 200
            except (ConnectionError, IndexError, socket.timeout):
                pass
            if ok:
                break
            time.sleep(0.05)
        self.assertTrue(ok)
        self.assertEqual(self.remote.wait_for(1)[0].query, "after=emfile")

    @staticmethod
    def _cpu(ext):
        with open("/proc/%d/stat" % ext.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def test_headers_over_the_limit_get_431(self):
        ext = self.start(PYROSCOPE_MAX_HEADER_BYTES=1024)
        r = http_exchange(self.port, post("/ingest", b"x", {"X-Big": "y" * 2000}))
        self.assertEqual(r[0][0], 431)
        ext.wait_for_log(r'headers over PYROSCOPE_MAX_HEADER_BYTES" limit=1024')
        self.assertEqual(http_exchange(self.port, post("/ingest", b"x", {"X-Ok": "y" * 500}))[0][0], 200)


if __name__ == "__main__":
    unittest.main()
