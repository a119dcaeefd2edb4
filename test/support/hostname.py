"""A remote named by a host name that only a private /etc/hosts knows, and a flood of uploads
each on a fresh client connection: issue 12's field scenario, shared by the dev-build test
(test/integration/test_hostname_remote.py) and the layer's (test/layer/test_layer.py).

The private /etc/hosts is a bind mount in a mount namespace of the extension's own
(`unshare -m`), so the machine's file is never touched. That needs root: otherwise the tests skip
with a message. As root, a namespace that cannot be made is a failure, not a skip.

Why it finds the bug: with PLE_TEST_DNS_CACHE_TIMEOUT=0 and a remote that drops idle connections
at once, every upload makes curl open a new connection and resolve the name again, so the
resolver's own sockets (Debian's threaded resolver: a socketpair) come and go between the relay's
accepts, and their descriptor numbers are handed straight to new client connections."""
import os
import shutil
import socket
import subprocess
import threading
import time
import unittest

HOST = "remote.test"


def private_hosts_prefix(tmpdir):
    """argv to put in front of the binary: a new mount namespace where /etc/hosts maps HOST to
    127.0.0.1, then exec. Raises unittest.SkipTest when not root."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root: a private /etc/hosts is a bind mount in a mount "
                                "namespace (unshare -m); run the suite as root to include it")
    unshare = shutil.which("unshare")
    if not unshare:
        raise AssertionError("unshare (util-linux) is needed for the private /etc/hosts")
    hosts = os.path.join(tmpdir, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.0.1 %s\n" % HOST)
    enter = [unshare, "-m", "--propagation", "private", "sh", "-c",
             'mount --bind "$0" /etc/hosts && exec "$@"', hosts]
    probe = subprocess.run(enter + ["grep", "-q", HOST, "/etc/hosts"], capture_output=True,
                           text=True, timeout=20)
    if probe.returncode != 0:
        raise AssertionError("as root, could not bind a private /etc/hosts in a mount namespace: "
                             "%s" % (probe.stderr.strip() or probe.returncode))
    return enter


def _one_upload(port, i, timeout):
    body = b"relay;hostname;upload %d\n" % i
    req = (b"POST /ingest?name=hostname.test&i=%d HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
           % (i, len(body))) + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(req)
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(256)
            if not chunk:
                break
            got += chunk
    return got.split(b"\r\n", 1)[0].decode(errors="replace")


def uploads_on_fresh_connections(port, n, clients=4, gap=0.005, timeout=5.0):
    """n uploads (query i=0..n-1), each on a new TCP connection, from `clients` threads at once,
    each waiting for its answer up to `timeout`. Returns {i: what went wrong} for those not
    answered 200."""
    failed = {}
    lock = threading.Lock()

    def client(first):
        for i in range(first, n, clients):
            try:
                status = _one_upload(port, i, timeout)
                ok = status.startswith("HTTP/1.1 200")
                why = status or "connection closed without an answer"
            except OSError as e:  # socket.timeout included
                ok, why = False, "%s: %s" % (type(e).__name__, e)
            if not ok:
                with lock:
                    failed[i] = why
            time.sleep(gap)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(n * (timeout + 1))
    return failed
