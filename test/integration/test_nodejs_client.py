"""A real Pyroscope client, @pyroscope/nodejs from npm, pushes through the relay in dev mode; its
uploads must reach the remote byte for byte, as valid gzipped pprof, with the session label added.

The package is installed with npm into the build tree on first use (the npm registry is the one
network this suite uses). Set PLE_SKIP_NODE=1 to skip this test on a machine without npm access;
it never skips on its own."""
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import unittest
import urllib.parse

from harness import BINARY, Extension, free_port
from remote import RecordingRemote

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = "@pyroscope/nodejs@0.6.4"
PREFIX = os.path.join(os.path.dirname(os.path.abspath(BINARY)), "node-client")


def install_client():
    marker = os.path.join(PREFIX, "node_modules", "@pyroscope", "nodejs", "package.json")
    if os.path.exists(marker):
        return
    if not shutil.which("npm") or not shutil.which("node"):
        raise AssertionError("node and npm are needed for this test (apt-get install nodejs npm)")
    os.makedirs(PREFIX, exist_ok=True)
    r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", PREFIX, CLIENT],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError("npm install %s failed:\n%s" % (CLIENT, r.stderr[-2000:]))


@unittest.skipIf(os.environ.get("PLE_SKIP_NODE") == "1", "PLE_SKIP_NODE=1")
class NodejsClientTest(unittest.TestCase):
    def test_pprof_uploads_arrive_intact(self):
        install_client()
        with RecordingRemote() as remote:
            port = free_port()
            ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                             "PYROSCOPE_REMOTE_ADDRESS": remote.url}).start()
            self.addCleanup(ext.kill)
            env = dict(os.environ, RELAY_ADDRESS="http://localhost:%d" % port,
                       NODE_PATH=os.path.join(PREFIX, "node_modules"))
            r = subprocess.run(["node", os.path.join(HERE, "nodejs_client.js")], env=env,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            sent = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
            self.assertGreaterEqual(len(sent), 1, "the client sent nothing: " + r.stderr)
            self.assertTrue(all(s["status"] == 200 for s in sent), sent)
            got = remote.wait_for(len(sent), timeout=10)
            self.assertEqual(ext.stop(), 0)

        digests = sorted((s["sha256"], s["length"]) for s in sent)
        self.assertEqual(sorted((hashlib.sha256(g.body).hexdigest(), len(g.body)) for g in got),
                         digests, "bodies changed on the way")
        for g in got:
            self.assertEqual(g.path, "/ingest")
            self.assertEqual(g.header("Content-Type"), sent[0]["contentType"])
            params = urllib.parse.parse_qs(g.query)
            self.assertEqual(params["format"], ["pprof"])
            m = re.fullmatch(r"nodejs\.it\{(.*)\}", params["name"][0])
            self.assertIsNotNone(m, params["name"][0])
            labels = m.group(1).split(",")
            self.assertEqual(labels, sorted(labels), "labels are re-serialised sorted")
            self.assertRegex(labels[0], r"^__session_id__=[0-9a-f]{16}$")
            self.assertIn("region=loopback", labels)
            profile = gzip.decompress(g.body)
            self.assertGreater(len(profile), 100)
            self.assertEqual(profile[0], 0x0A, "a pprof Profile starts with field 1 (sample_type)")


if __name__ == "__main__":
    unittest.main()
