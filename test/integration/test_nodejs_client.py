"""A real Pyroscope client, @pyroscope/nodejs from npm, pushes through the relay in dev mode.

Its uploads must reach the remote byte for byte: the node script wraps the client's transport
(global fetch) and prints, for each upload, the URL, the content type and the SHA-256 and length
of the body exactly as the client sent it; the test compares these with what the recording
remote received. The bodies must also gunzip to a non-empty protobuf (pprof), and the `name`
parameter must carry the app name, the client's tag and the relay's __session_id__ label.

The package is installed with npm (`npm install --prefix`) into node-client/ beside the binary
(the build tree; PLE_NODE_PREFIX overrides the directory), once; later runs reuse it. The npm registry is the only network this suite
uses. If node, npm or the registry is unavailable the test FAILS with the reason; it never skips
on its own. Set PLE_SKIP_NODE=1 to skip it deliberately on such a machine."""
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse

import pprof
from harness import BINARY, Extension, free_port
from remote import RecordingRemote

CLIENT = "@pyroscope/nodejs@0.6.4"  # known to work with Node >= 20.20
PREFIX = os.environ.get("PLE_NODE_PREFIX") or os.path.join(
    os.path.dirname(os.path.abspath(BINARY)), "node-client")

SCRIPT = r"""
// A real Pyroscope client profiling a busy loop and pushing to the relay. Global fetch (the
// client's transport) is wrapped to print, for each upload, exactly what the client sent.
const crypto = require('node:crypto');
const Pyroscope = require('@pyroscope/nodejs');

const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const b = init.body;
  const body = b instanceof ArrayBuffer ? Buffer.from(new Uint8Array(b))
    : ArrayBuffer.isView(b) ? Buffer.from(b.buffer, b.byteOffset, b.byteLength)
    : Buffer.from(b);
  const headers = new Headers(init.headers);
  const sha256 = crypto.createHash('sha256').update(body).digest('hex');
  let status = 0, error = null;
  try {
    const res = await realFetch(url, init);
    status = res.status;
    return res;
  } catch (e) {
    error = String(e && e.cause ? e.cause : e);
    throw e;
  } finally {
    console.log(JSON.stringify({
      url: String(url), method: init.method, status, error,
      contentType: headers.get('content-type'), length: body.length, sha256,
    }));
  }
};

Pyroscope.init({
  serverAddress: process.env.RELAY_ADDRESS,
  appName: 'nodejs.it',
  flushIntervalMs: 1000,
  tags: { region: 'loopback' },
});
Pyroscope.start();
// Burn CPU in slices, yielding to the event loop so the periodic flushes run too.
let x = 0;
const end = Date.now() + 2600;
function burn() {
  const slice = Date.now() + 50;
  while (Date.now() < slice) x += Math.sqrt(Math.random());
  if (Date.now() < end) return setTimeout(burn, 0);
  Pyroscope.stop().then(() => process.exit(x > 0 ? 0 : 1));
}
burn();
"""


def install_client():
    """Installs CLIENT under PREFIX unless already there; fails with the reason otherwise."""
    marker = os.path.join(PREFIX, "node_modules", "@pyroscope", "nodejs", "package.json")
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f).get("version") == CLIENT.rsplit("@", 1)[1]:
                return
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise AssertionError("%s is needed for this test (or set PLE_SKIP_NODE=1)" % tool)
    os.makedirs(PREFIX, exist_ok=True)
    try:
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", PREFIX, CLIENT],
                           capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        raise AssertionError("npm install %s took over 240 s; no network? (PLE_SKIP_NODE=1 skips "
                             "this test)" % CLIENT)
    if r.returncode != 0 or not os.path.exists(marker):
        raise AssertionError("npm install %s into %s failed (PLE_SKIP_NODE=1 skips this test):\n%s"
                             % (CLIENT, PREFIX, r.stderr[-2000:]))


@unittest.skipIf(os.environ.get("PLE_SKIP_NODE") == "1", "PLE_SKIP_NODE=1")
class NodejsClientTest(unittest.TestCase):
    def test_pprof_uploads_arrive_intact(self):
        install_client()
        tmp = tempfile.mkdtemp(prefix="ple-node-")
        self.addCleanup(shutil.rmtree, tmp, True)
        script = os.path.join(tmp, "client.js")
        with open(script, "w") as f:
            f.write(SCRIPT)

        remote = RecordingRemote().start()
        self.addCleanup(remote.stop)
        port = free_port()
        ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                         "PYROSCOPE_REMOTE_ADDRESS": remote.url})
        self.addCleanup(ext.kill)
        ext.start()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp,
               "RELAY_ADDRESS": "http://localhost:%d" % port,
               "NODE_PATH": os.path.join(PREFIX, "node_modules")}
        r = subprocess.run(["node", script], env=env, cwd=tmp, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, "node client failed:\n" + r.stderr[-3000:])
        sent = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        # Periodic flushes (1 s) during the 2.6 s run, then the one at stop().
        self.assertGreaterEqual(len(sent), 2, "the client sent too little:\n" + r.stdout + r.stderr)
        self.assertEqual([(s["status"], s["error"]) for s in sent], [(200, None)] * len(sent), sent)
        got = remote.wait_for(len(sent), timeout=10)
        self.assertEqual(ext.stop(), 0, ext.log())
        self.assertEqual(len(remote.arrivals), len(sent), "more uploads at the remote than sent")

        # What the client sends (checked, not assumed): raw gzipped pprof, POST /ingest.
        for s in sent:
            self.assertEqual(s["method"], "POST")
            self.assertEqual(s["contentType"], "application/octet-stream")
            u = urllib.parse.urlsplit(s["url"])
            self.assertEqual(u.path, "/ingest")

        # Byte for byte: the same multiset of bodies.
        self.assertEqual(sorted((hashlib.sha256(g.body).hexdigest(), len(g.body)) for g in got),
                         sorted((s["sha256"], s["length"]) for s in sent), "bodies changed on the way")
        by_hash = {s["sha256"]: s for s in sent}
        sids = set()
        for g in got:
            s = by_hash[hashlib.sha256(g.body).hexdigest()]
            self.assertEqual(g.method, "POST")
            self.assertEqual(g.path, "/ingest")
            self.assertEqual(g.header_all("Content-Type"), [s["contentType"]])
            self.assertEqual(g.header("X-Forwarded-Host"), "localhost:%d" % port)
            # Every query parameter but name is kept as the client sent it, in order.
            client_q = urllib.parse.urlsplit(s["url"]).query.split("&")
            relay_q = g.query.split("&")
            self.assertEqual([p for p in relay_q if not p.startswith("name=")],
                             [p for p in client_q if not p.startswith("name=")])
            params = g.params
            self.assertEqual(params["format"], ["pprof"])
            name = params["name"][0]
            m = re.fullmatch(r"nodejs\.it\{(.*)\}", name)
            self.assertIsNotNone(m, name)
            labels = m.group(1).split(",")
            self.assertEqual(labels, sorted(labels), "labels are re-serialised sorted")
            self.assertRegex(labels[0], r"^__session_id__=[0-9a-f]{16}$")
            sids.add(labels[0])
            self.assertIn("region=loopback", labels)
            profile = gzip.decompress(g.body)
            self.assertGreater(len(profile), 100)
            fields = pprof.field_numbers(profile)
            self.assertEqual(fields[0], 1, "a pprof Profile starts with field 1 (sample_type)")
            self.assertIn(6, fields, "a pprof Profile has a string table (field 6)")
        self.assertEqual(len(sids), 1, "one session id per relay process: %s" % sids)


if __name__ == "__main__":
    unittest.main()
