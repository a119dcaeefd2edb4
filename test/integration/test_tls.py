"""An https remote: the relay verifies it against the CA named by SSL_CERT_FILE, delivers through
it, and refuses (without retrying) a remote whose certificate it cannot verify. The CA and the
server certificate for 127.0.0.1 are made fresh with the openssl command for each run."""
import os
import shutil
import ssl
import tempfile
import unittest

from harness import BINARY, Extension, free_port
from remote import RecordingRemote
from tlsca import make_ca_and_cert as make_test_ca
from test_relay import http_exchange, post


def make_ca_and_cert(d):
    make_test_ca(d, "127.0.0.1", "IP:127.0.0.1")


@unittest.skipUnless(shutil.which("openssl"), "the openssl command is needed (apt-get install openssl)")
class TlsTest(unittest.TestCase):
    binary = BINARY  # test/layer runs this class on the layer's binary too
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        make_ca_and_cert(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.dir + "/srv.pem", self.dir + "/srv.key")
        self.remote = RecordingRemote(tls=ctx).start()
        self.addCleanup(self.remote.stop)

    def start(self, ca_file):
        self.port = free_port()
        ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": self.port,
                         "PYROSCOPE_REMOTE_ADDRESS": self.remote.url, "PYROSCOPE_LOG_LEVEL": "debug",
                         "SSL_CERT_FILE": ca_file}, binary=self.binary).start()
        self.addCleanup(ext.kill)
        return ext

    def test_https_remote_verified_with_ssl_cert_file(self):
        ext = self.start(self.dir + "/ca.pem")
        ext.wait_for_log(r'msg="CA certificates" file=.*ca\.pem')
        body = os.urandom(50000)
        self.assertEqual(http_exchange(self.port, post("/ingest?tls=1", body))[0][0], 200)
        self.assertEqual(self.remote.wait_for(1)[0].body, body)

    def test_unverifiable_remote_is_refused_not_retried(self):
        other = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, other, True)
        make_ca_and_cert(other)  # a CA that did not sign the remote's certificate
        ext = self.start(other + "/ca.pem")
        http_exchange(self.port, post("/ingest", b"x"))
        # OpenSSL's words, or wolfSSL's (the layer)
        ext.wait_for_log(r'level=error msg="upload failed" .*(SSL certificate problem|CA signer not '
                         r'available).*attempts=1')
        self.assertEqual(len(self.remote.requests), 0)

    def test_unreadable_ssl_cert_file_is_a_clear_error(self):
        ext = self.start(self.dir + "/missing.pem")
        ext.wait_for_log(r'level=error msg="SSL_CERT_FILE cannot be read; https uploads will fail" '
                         r'path=.*missing\.pem')

    def test_ssl_cert_file_that_holds_no_certificate_is_a_clear_error(self):
        """Readable but no bundle: one error when the extension parses it (at start in dev mode),
        then each upload fails at once, unsent and not retried, saying why."""
        bad = os.path.join(self.dir, "not-a-bundle.pem")
        with open(bad, "w") as f:
            f.write("this is not a certificate\n")
        ext = self.start(bad)
        ext.wait_for_log(r'level=error msg="CA certificates cannot be loaded; https uploads will '
                         r'fail" file=.*not-a-bundle\.pem')
        self.assertEqual(http_exchange(self.port, post("/ingest?bad=1", b"x"))[0][0], 200)
        ext.wait_for_log(r'level=error msg="upload failed" .*error="the CA certificates '
                         r'\(SSL_CERT_FILE, SSL_CERT_DIR\) cannot be loaded".*attempts=1')
        self.assertEqual(len(self.remote.requests), 0)
        self.assertEqual(ext.log().count("CA certificates cannot be loaded"), 1)  # logged once


if __name__ == "__main__":
    unittest.main()
