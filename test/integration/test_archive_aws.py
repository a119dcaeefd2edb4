"""The per-trace archive checked by AWS's own code, not only by our test S3.

Two functions of one X-Ray trace archive their uploads through the real binary into the local
S3 (test/support/s3.py, which verifies SigV4 itself). Then:

- AWS's own SigV4 implementation, npm `@smithy/signature-v4` (what the AWS SDK for JavaScript
  v3 signs with), re-signs every PUT the extension sent from its method, path, signed headers,
  date and the function role's credentials, and must produce the very Authorization header that
  libcurl sent. A control run with a wrong secret and one with a changed key must NOT match, so
  the comparison can fail.
- The AWS CLI from Debian (`awscli`, /usr/bin/aws) reads the trace back the way the README tells
  users to: `aws s3 cp --recursive s3://<bucket>/<prefix><traceRoot>/ <dir>`, with
  --endpoint-url pointing at the local S3 (its ListObjectsV2 and GETs are SigV4-verified there).
- The downloaded .pprof is decoded with a pprof reader (test/support/pprof.py's read_profile)
  and must hold exactly the stacks the function's profiler sent.

The npm packages are installed once, by this test, into node-sigv4/ beside the binary (the
build tree; PLE_SIGV4_PREFIX overrides it); the npm registry is the only network used. If node,
npm, the registry or /usr/bin/aws is missing the test FAILS with the reason (test/install-deps.sh
installs awscli, nodejs and npm); it never skips."""
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import uuid

from harness import BINARY, free_port
from pprof import build_profile, multipart, read_profile
from remote import RecordingRemote
from s3 import S3Server
from test_trace_sampling import Function, push, root_with

AKID, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session/token+value="
REGION = "us-east-1"
PACKAGES = ["@smithy/signature-v4@5.7.5", "@smithy/hash-node@4.5.2"]
PREFIX = os.environ.get("PLE_SIGV4_PREFIX") or os.path.join(
    os.path.dirname(os.path.abspath(BINARY)), "node-sigv4")
AWS = "/usr/bin/aws"  # Debian's awscli; not whatever else `aws` may be on PATH

# Re-signs each request with AWS's SignatureV4 and prints one JSON line per request.
VERIFY_JS = r"""
const { SignatureV4 } = require('@smithy/signature-v4');
const { Hash } = require('@smithy/hash-node');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));

function amzDate(s) {  // 20261130T065320Z -> Date
  return new Date(Date.UTC(+s.slice(0, 4), +s.slice(4, 6) - 1, +s.slice(6, 8),
                           +s.slice(9, 11), +s.slice(11, 13), +s.slice(13, 15)));
}

(async () => {
  for (const r of input.requests) {
    const auth = r.headers['authorization'];
    const m = /^AWS4-HMAC-SHA256 Credential=([^\/]+)\/(\d{8})\/([^\/]+)\/([^\/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth || '');
    if (!m) { console.log(JSON.stringify({ ok: false, why: 'unparsable Authorization', auth })); continue; }
    const signed = m[5].split(';');
    const headers = {};
    for (const h of signed) headers[h] = r.headers[h];
    const [path, query] = r.path.split('?');
    const q = {};
    for (const [k, v] of new URLSearchParams(query || '')) q[k] = v;
    const [host, port] = r.headers['host'].split(':');
    const signer = new SignatureV4({
      credentials: { accessKeyId: input.akid, secretAccessKey: input.secret, sessionToken: input.token },
      region: m[3], service: m[4], sha256: Hash.bind(null, 'sha256'),
      uriEscapePath: false,  // S3: the path is signed as sent, not encoded twice
      applyChecksum: false,
    });
    const out = await signer.sign(
      { method: r.method, protocol: 'http:', hostname: host, port: +port, path, query: q, headers },
      { signingDate: amzDate(r.headers['x-amz-date']), signableHeaders: new Set(signed) });
    const want = out.headers['authorization'];
    console.log(JSON.stringify({ ok: want === auth, path: r.path, sent: auth, aws: want }));
  }
})().catch((e) => { console.error(e); process.exit(2); });
"""


def install_sigv4():
    """Installs PACKAGES under PREFIX unless already there; fails with the reason otherwise."""
    want = {p.rsplit("@", 1)[0]: p.rsplit("@", 1)[1] for p in PACKAGES}

    def installed():
        for name, version in want.items():
            try:
                with open(os.path.join(PREFIX, "node_modules", name, "package.json")) as f:
                    if json.load(f).get("version") != version:
                        return False
            except OSError:
                return False
        return True

    if installed():
        return
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise AssertionError("%s is needed for this test (test/install-deps.sh installs it)"
                                 % tool)
    os.makedirs(PREFIX, exist_ok=True)
    try:
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", PREFIX]
                           + PACKAGES, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        raise AssertionError("npm install %s took over 240 s; no network?" % " ".join(PACKAGES))
    if r.returncode != 0 or not installed():
        raise AssertionError("npm install %s into %s failed:\n%s"
                             % (" ".join(PACKAGES), PREFIX, r.stderr[-2000:]))


def aws_verdicts(requests, akid=AKID, secret=SECRET, token=TOKEN):
    """AWS's SignatureV4 on each recorded request: a list of {ok, path, sent, aws}."""
    payload = {"akid": akid, "secret": secret, "token": token,
               "requests": [{"method": r["method"], "path": r["path"], "headers": r["headers"]}
                            for r in requests]}
    with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as f:
        f.write(VERIFY_JS)
    try:
        r = subprocess.run(["node", f.name], input=json.dumps(payload), capture_output=True,
                           text=True, timeout=60,
                           env=dict(os.environ, NODE_PATH=os.path.join(PREFIX, "node_modules")))
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        raise AssertionError("the @smithy/signature-v4 verifier failed:\n" + r.stderr[-2000:])
    return [json.loads(line) for line in r.stdout.splitlines()]


STACKS_A = [(["main.main", "lambda.Start", "handler.Checkout", "json.Unmarshal"], 30_000_000),
            (["main.main", "lambda.Start", "handler.Checkout", "sql.Query"], 120_000_000)]
STACKS_B = [(["main.main", "lambda.Start", "handler.Charge", "crypto.Sign"], 70_000_000)]


def go_upload(app, stacks):
    """A pyroscope-go style multipart upload of a pprof holding exactly `stacks`."""
    profile = gzip.compress(build_profile(stacks), mtime=0)
    ctype, body = multipart([("profile", "profile.pprof", profile),
                             ("sample_type_config", "sample_type_config.json",
                              b'{"cpu":{"units":"samples","sampled":true}}')])
    path = "/ingest?name=%s%%7Benv%%3Dprod%%7D&from=1&until=2&spyName=gospy" % app
    return path, {"Content-Type": ctype}, body, profile


class ArchiveCheckedByAwsTest(unittest.TestCase):
    def setUp(self):
        if not os.access(AWS, os.X_OK):
            raise AssertionError("%s (Debian's awscli) is needed for this test; "
                                 "test/install-deps.sh installs it" % AWS)
        install_sigv4()
        self.remote = RecordingRemote()
        self.remote.start()
        self.addCleanup(self.remote.stop)
        self.s3_port = free_port()
        self.s3 = S3Server(self.s3_port, ["profiles"], {AKID: (SECRET, TOKEN)}, region=REGION)
        self.s3.__enter__()
        self.addCleanup(self.s3.__exit__, None, None, None)

    def function(self, name):
        return Function(self, self.remote, name=name,
                        XRAYPROFILE_S3_ENDPOINT="http://127.0.0.1:%d" % self.s3_port,
                        XRAYPROFILE_THRESHOLD="65535", XRAYPROFILE_S3_BUCKET="profiles",
                        XRAYPROFILE_S3_PREFIX="traces", AWS_REGION=REGION,
                        AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET,
                        AWS_SESSION_TOKEN=TOKEN)

    def aws_cli(self, *args):
        home = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, home, True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
               "AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_SESSION_TOKEN": TOKEN, "AWS_DEFAULT_REGION": REGION,
               "AWS_CONFIG_FILE": os.path.join(home, "config"),
               "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "credentials"),
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": ""}
        with open(env["AWS_CONFIG_FILE"], "w") as f:
            f.write("[default]\ns3 =\n    addressing_style = path\n")
        r = subprocess.run([AWS, "--endpoint-url", "http://127.0.0.1:%d" % self.s3_port]
                           + list(args), capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(r.returncode, 0, "aws %s failed:\n%s%s" % (args, r.stdout, r.stderr))
        return r.stdout

    def test_puts_signed_as_aws_signs_and_read_back_with_the_aws_cli(self):
        root = root_with("0abc")
        fa, fb = self.function("checkout"), self.function("charge")
        rid_a, rid_b = str(uuid.uuid4()), str(uuid.uuid4())
        fa.invoke(trace_root=root, request_id=rid_a)
        fb.invoke(trace_root=root, request_id=rid_b)
        path, headers, body, profile_a = go_upload("shop.checkout", STACKS_A)
        self.assertEqual(push(fa.port, path, body, headers), 200)
        self.assertEqual(push(fa.port, "/ingest?name=shop.checkout&from=1&until=2",
                              b"main;checkout 3\n"), 200)
        path, headers, body, profile_b = go_upload("shop.charge", STACKS_B)
        self.assertEqual(push(fb.port, path, body, headers), 200)
        self.assertEqual(fa.shutdown(), 0)  # the shutdown drain sends the archive's PUTs
        self.assertEqual(fb.shutdown(), 0)
        puts = [r for r in self.s3.requests if r["method"] == "PUT"]
        self.assertEqual(len(puts), 3, [(r["path"], r["status"]) for r in puts])
        self.assertEqual([r["status"] for r in puts], [200] * 3)

        # 1. AWS's own SigV4 computes the Authorization header the extension sent, byte for byte.
        verdicts = aws_verdicts(puts)
        self.assertEqual(len(verdicts), 3)
        for v in verdicts:
            self.assertTrue(v["ok"], "AWS's SignatureV4 disagrees:\n%s" % json.dumps(v, indent=1))
        # ... and the comparison can fail: a wrong secret, or another key, must not match.
        self.assertFalse(any(v["ok"] for v in aws_verdicts(puts, secret=SECRET + "x")))
        moved = [dict(r, path=r["path"].replace("/traces/", "/traces2/")) for r in puts]
        self.assertFalse(any(v["ok"] for v in aws_verdicts(moved)))

        # 2. The AWS CLI reads the whole trace back, both functions, as the README says.
        out = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, out, True)
        self.aws_cli("s3", "cp", "--recursive", "--only-show-errors",
                     "s3://profiles/traces/%s/" % root, os.path.join(out, root))
        got = sorted(os.path.relpath(os.path.join(d, f), out)
                     for d, _, files in os.walk(out) for f in files)
        self.assertEqual(got, sorted([
            "%s/checkout/%s/1-shop.checkout.pprof" % (root, rid_a),
            "%s/checkout/%s/2-shop.checkout.folded" % (root, rid_a),
            "%s/charge/%s/1-shop.charge.pprof" % (root, rid_b)]))
        lists = [r for r in self.s3.requests if r["method"] == "GET" and "list-type=2" in r["path"]]
        self.assertTrue(lists and all(r["status"] == 200 for r in lists), lists)

        # 3. The downloaded objects are the profiles: the pprof decodes to the stacks sent.
        def read(rel):
            with open(os.path.join(out, rel), "rb") as f:
                return f.read()
        pa = read("%s/checkout/%s/1-shop.checkout.pprof" % (root, rid_a))
        self.assertEqual(pa, profile_a)
        decoded = read_profile(pa)
        self.assertEqual(decoded["sample_types"], [("cpu", "nanoseconds")])
        self.assertEqual([(f, v[0]) for f, v in decoded["stacks"]], STACKS_A)
        decoded = read_profile(read("%s/charge/%s/1-shop.charge.pprof" % (root, rid_b)))
        self.assertEqual([(f, v[0]) for f, v in decoded["stacks"]], STACKS_B)
        self.assertEqual(read("%s/checkout/%s/2-shop.checkout.folded" % (root, rid_a)),
                         b"main;checkout 3\n")


if __name__ == "__main__":
    unittest.main()
