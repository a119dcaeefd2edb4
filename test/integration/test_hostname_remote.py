"""Issue 12: with a remote named by a host name, no client connection is ever left unanswered.

The dev build (Debian's libcurl, threaded resolver) against http://remote.test:PORT, where
remote.test exists only in a private /etc/hosts (test/support/hostname.py). 1,000 uploads, each
on a fresh client connection, while every upload makes curl resolve the name again. Before the
fix about 1 client in 80 got no answer: a uv_poll_t kept for the resolver's socketpair outlived
it and swallowed the next accepted client that got its descriptor number."""
import os
import re
import shutil
import tempfile
import unittest

from harness import Extension, free_port
from hostname import HOST, private_hosts_prefix, uploads_on_fresh_connections
from remote import RecordingRemote

UPLOADS = 1000


class HostNameRemoteTest(unittest.TestCase):
    def test_every_client_answered_and_every_upload_delivered(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, True)
        prefix = private_hosts_prefix(tmp)
        remote = RecordingRemote().start()
        self.addCleanup(remote.stop)
        remote.close_each = True  # Connection: close: a new connection, so a new resolve, per upload
        port = free_port()
        ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                         "PYROSCOPE_REMOTE_ADDRESS": "http://%s:%d" % (HOST, remote.port),
                         "PYROSCOPE_LOG_LEVEL": "debug", "PLE_TEST_DNS_CACHE_TIMEOUT": "0"},
                        prefix=prefix)
        self.addCleanup(ext.kill)
        ext.start(timeout=20)
        check_scenario(self, ext, remote, UPLOADS, resolver_sockets=True)


def check_scenario(case, ext, remote, n, resolver_sockets):
    """The assertions shared with the layer's test."""
    failed = uploads_on_fresh_connections(ext.port, n)
    case.assertEqual(len(failed), 0, "%d of %d clients not answered (first: %s); log tail:\n%s"
                     % (len(failed), n, sorted(failed.items())[:5], "\n".join(ext.log_lines()[-30:])))
    got = remote.wait_for(n, timeout=60)
    seen = sorted(int(r.params["i"][0]) for r in got)
    case.assertEqual(seen, list(range(n)), "every upload delivered exactly once")
    case.assertGreater(len(remote.connections), n // 4,
                       "the remote saw new connections, so the name was resolved again")
    case.assertEqual(ext.stop(timeout=20), 0, ext.log())
    line = ext.wait_for_log(r'msg="upstream sockets"')
    fig = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    case.assertEqual(fig["opened"], fig["closed"], "every socket curl opened was closed through "
                                                   "our close callback: %s" % line)
    if resolver_sockets:
        case.assertGreater(fig["foreign"], 0, "the resolver's own sockets came and went: %s" % line)
    case.assertNotIn("closed behind our back", ext.log())
    ext.wait_for_log(r'msg="shutdown summary" accepted=%d relayed=%d failed=0 ' % (n, n))
    return fig


if __name__ == "__main__":
    unittest.main()
