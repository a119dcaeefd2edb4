"""Proofs about the Lambda layer that `make -f layer.mk` built: the zip's layout, a static ELF
(checked with readelf), the sizes, and that the binary alone in an otherwise empty root directory
relays an upload byte for byte to a remote on 127.0.0.1, over http and https (by name and by IP
address), exits 0 on SIGTERM, and idles in one thread and little memory; and, on the native
architecture, HTTP/2 with one connection per burst and TLS resumption (test_http2.py).

Run by `make -f layer.mk test [ARCH=arm64]`, which sets PLE_LAYER_ARCH, PLE_LAYER_ZIP and
PLE_LAYER_BUILD. The empty root is entered with chroot as root, or `unshare -r --root` otherwise.
arm64 runs under qemu-aarch64-static, copied into the root: the memory and thread figures are
then qemu's and are printed, not asserted."""
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "support"))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))

from harness import Extension, free_port, http_exchange, post  # noqa: E402
from remote import RecordingRemote  # noqa: E402
from tlsca import make_ca_and_cert  # noqa: E402
from hostname import HOST, private_hosts_prefix  # noqa: E402
from test_hostname_remote import check_scenario  # noqa: E402
import test_http2  # noqa: E402  (its class is run on the layer's binary below)
import test_tls  # noqa: E402  (likewise)

ARCH = os.environ.get("PLE_LAYER_ARCH", "x86_64")
ZIP = os.path.join(ROOT, os.environ.get("PLE_LAYER_ZIP", "dist/pyroscope-lambda-extension-%s.zip" % ARCH))
BUILD = os.path.join(ROOT, os.environ.get("PLE_LAYER_BUILD", "build/layer-%s" % ARCH))
NAME = "pyroscope-lambda-extension"
BINARY = os.path.join(BUILD, NAME)
CROSS = "aarch64-linux-gnu-" if ARCH == "arm64" else ""
QEMU = shutil.which("qemu-aarch64-static") if ARCH == "arm64" else None
EMULATED = ARCH == "arm64" and os.uname().machine != "aarch64"

MAX_BINARY = 2_500_000
MAX_ZIP = 1_200_000
MAX_IDLE_RSS_KB = 2_500  # 2.5 MB (of 1000 kB)

# Wall-clock bounds: qemu is slower to start than the real thing.
START_TIMEOUT = 20.0 if EMULATED else 5.0

CA_FILE = "/etc/ssl/certs/ca-certificates.crt"


_reported = []


def report(what, value):
    """Prints a figure under the test's name (unittest -v then writes ok on a line of its own)."""
    sys.stderr.write("\n  layer %s: %s: %s" % (ARCH, what, value))
    _reported.append(what)


class Case(unittest.TestCase):
    def tearDown(self):
        if _reported:
            sys.stderr.write("\n  ")
            del _reported[:]


def readelf(*args):
    return subprocess.run(["readelf", *args, BINARY], check=True, capture_output=True,
                          text=True, timeout=30).stdout


class EmptyRoot:
    """A temporary directory holding only the binary, a CA bundle and /etc/hosts (and qemu for
    arm64), and a launcher script outside it that enters it with chroot or unshare and execs the
    binary there, so the process the harness signals is the extension itself."""

    def __init__(self, ca_at=None, ca_src=CA_FILE):
        self.dir = tempfile.mkdtemp(prefix="ple-layer-")
        self.root = os.path.join(self.dir, "root")
        os.makedirs(os.path.join(self.root, "etc"))
        shutil.copy(BINARY, os.path.join(self.root, NAME))
        shutil.copy("/etc/hosts", os.path.join(self.root, "etc", "hosts"))
        ca_at = (ca_at or CA_FILE).lstrip("/")
        os.makedirs(os.path.dirname(os.path.join(self.root, ca_at)), exist_ok=True)
        shutil.copy(ca_src, os.path.join(self.root, ca_at))
        argv = ["/" + NAME]
        if EMULATED:
            if not QEMU:
                raise unittest.SkipTest("qemu-aarch64-static is needed (apt-get install qemu-user-static)")
            shutil.copy(QEMU, os.path.join(self.root, "qemu-aarch64-static"))
            argv = ["/qemu-aarch64-static"] + argv
        if os.geteuid() == 0:
            enter = [shutil.which("chroot") or "/usr/sbin/chroot", self.root]
        else:
            enter = [shutil.which("unshare") or "/usr/bin/unshare", "-r", "--root", self.root]
        self.launcher = os.path.join(self.dir, "enter-root")
        with open(self.launcher, "w") as f:
            f.write("#!/bin/sh\nexec %s\n" % " ".join("'%s'" % a for a in enter + argv))
        os.chmod(self.launcher, 0o755)

    def files(self):
        out = []
        for d, _, names in os.walk(self.root):
            out += [os.path.relpath(os.path.join(d, n), self.root) for n in names]
        return sorted(out)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class LayerArtifactTest(Case):
    def test_zip_holds_the_binary_and_the_versions(self):
        with zipfile.ZipFile(ZIP) as z:
            infos = {i.filename: i for i in z.infolist()}
            self.assertEqual(sorted(n for n in infos if not n.endswith("/")),
                             ["extensions/.%s.versions" % NAME, "extensions/" + NAME])
            mode = infos["extensions/" + NAME].external_attr >> 16
            self.assertTrue(stat.S_ISREG(mode), oct(mode))
            self.assertEqual(stat.S_IMODE(mode), 0o755)
            with open(BINARY, "rb") as f:
                self.assertEqual(z.read("extensions/" + NAME), f.read())
            versions = z.read("extensions/.%s.versions" % NAME).decode()
        report("versions", "\n    " + "\n    ".join(versions.strip().splitlines()))
        for pkg in ("musl", "wolfssl", "nghttp2", "c-ares", "libuv1", "jansson", "curl", "node-llhttp"):
            self.assertRegex(versions, r"(?m)^%s \d[\w.+~:-]*-\w[\w.+~]*\b" % re.escape(pkg))

    def test_static_elf_without_interpreter_or_dynamic_section(self):
        header = readelf("-hW")
        self.assertRegex(header, r"Type:\s+EXEC")
        self.assertIn("AArch64" if ARCH == "arm64" else "X86-64", header)
        programs = readelf("-lW")
        self.assertRegex(programs, r"\bLOAD\b")
        self.assertNotRegex(programs, r"\bINTERP\b")
        self.assertNotRegex(programs, r"\bDYNAMIC\b")
        self.assertIn("There is no dynamic section in this file.", readelf("-d"))
        sections = readelf("-SW")
        self.assertRegex(sections, r"\.symtab\b", "the self-profiler symbolises from .symtab")
        self.assertNotRegex(sections, r"\.debug_", "debug info should be stripped")

    def test_sizes(self):
        binary = os.path.getsize(BINARY)
        zipped = os.path.getsize(ZIP)
        with tempfile.TemporaryDirectory() as d:
            bare = os.path.join(d, "bare")
            subprocess.run([CROSS + "strip", "--strip-all", "-o", bare, BINARY], check=True, timeout=30)
            without_symtab = os.path.getsize(bare)
        report("binary", "%d bytes (%d without .symtab; limit %d)" % (binary, without_symtab, MAX_BINARY))
        report("zip", "%d bytes (limit %d)" % (zipped, MAX_ZIP))
        self.assertLessEqual(binary, MAX_BINARY)
        self.assertLessEqual(zipped, MAX_ZIP)


class EmptyRootTest(Case):
    """The binary alone in a root directory: no libc, no loader, no /proc, no /dev."""

    def run_in_root(self, root, remote, **env):
        port = free_port()
        base = {"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                "PYROSCOPE_REMOTE_ADDRESS": remote.url}
        base.update(env)
        ext = Extension(base, binary=root.launcher)
        self.addCleanup(ext.kill)
        t0 = time.monotonic()
        ext.start(timeout=START_TIMEOUT)
        return ext, time.monotonic() - t0

    def deliver_one(self, ext, remote, body):
        path = "/ingest?name=app.cpu&from=1&until=2"
        answers = http_exchange(ext.port, post(path, body), timeout=START_TIMEOUT)
        self.assertEqual(answers[0].status, 200, answers)
        try:
            got = remote.wait_for(1, timeout=START_TIMEOUT)
        except AssertionError as e:
            raise AssertionError("%s\nextension log:\n%s" % (e, ext.log()))
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].method, "POST")
        self.assertEqual(got[0].path, "/ingest")
        self.assertRegex(got[0].params["name"][0], r"^app\.cpu(\{|$)")  # + the session-id label
        self.assertEqual(got[0].body, body)

    def stop_cleanly(self, ext):
        ext.signal_term()
        self.assertEqual(ext.wait_exit(START_TIMEOUT), 0, ext.log())
        ext.wait_for_log(r'level=info msg="shutdown summary" accepted=1 relayed=1 failed=0 .*exit_code=0')

    def test_http_upload_delivered_from_empty_root(self):
        root = EmptyRoot()
        self.addCleanup(root.remove)
        extra = ["qemu-aarch64-static"] if EMULATED else []
        self.assertEqual(root.files(), sorted(
            [NAME, "etc/hosts", CA_FILE.lstrip("/")] + extra))
        remote = RecordingRemote().start()
        self.addCleanup(remote.stop)
        ext, took = self.run_in_root(root, remote)
        report("exec to listening", "%.0f ms%s" % (took * 1000, " (under qemu)" if EMULATED else ""))
        ext.wait_for_log(r"msg=relaying remote=")
        rss_kb, threads = self.idle_figures(ext)
        self.deliver_one(ext, remote, os.urandom(70000))
        self.stop_cleanly(ext)
        if not EMULATED:
            self.assertLessEqual(rss_kb, MAX_IDLE_RSS_KB)
            self.assertEqual(threads, 1, "curl with c-ares and an idle libuv loop use one thread")

    def idle_figures(self, ext):
        time.sleep(0.2)  # idle: started, nothing to do
        with open("/proc/%d/status" % ext.proc.pid) as f:
            status = f.read()
        rss_kb = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
        threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
        report("idle RSS", "%d kB%s (target <= %d kB)" % (rss_kb, " (of qemu)" if EMULATED else "",
                                                          MAX_IDLE_RSS_KB))
        report("threads", "%d%s" % (threads, " (of qemu)" if EMULATED else ""))
        return rss_kb, threads

    def https_upload(self, host):
        import ssl
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        make_ca_and_cert(d, "localhost", "DNS:localhost,IP:127.0.0.1")
        # Amazon Linux's path, the first the extension probes: no SSL_CERT_FILE is set.
        root = EmptyRoot(ca_at="/etc/pki/tls/certs/ca-bundle.crt", ca_src=d + "/ca.pem")
        self.addCleanup(root.remove)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d + "/srv.pem", d + "/srv.key")
        remote = RecordingRemote(tls=ctx).start()
        self.addCleanup(remote.stop)
        url = "https://%s:%d" % (host, remote.port)
        ext, _ = self.run_in_root(root, remote, PYROSCOPE_REMOTE_ADDRESS=url,
                                  PYROSCOPE_LOG_LEVEL="debug")
        ext.wait_for_log(r'msg="CA certificates" file=/etc/pki/tls/certs/ca-bundle\.crt')
        # Parsed before anything is pushed (at listening in dev mode, at registration in
        # Lambda), so that the first upload does not wait for it; and only once.
        ext.wait_for_log(r'msg="CA certificates parsed" us=\d+')
        self.deliver_one(ext, remote, os.urandom(50000))
        # The Python remote offers no h2 in ALPN: HTTP/1.1 over TLS, the fallback.
        ext.wait_for_log(r'msg="upload relayed" .* http=1\.1 ')
        self.stop_cleanly(ext)
        self.assertEqual(ext.log().count('msg="CA certificates parsed"'), 1, ext.log())

    @unittest.skipUnless(shutil.which("openssl"), "the openssl command is needed (apt-get install openssl)")
    def test_https_upload_verified_with_amazon_linux_bundle_path(self):
        # By name, resolved by c-ares from the root's /etc/hosts.
        self.https_upload("localhost")

    @unittest.skipUnless(shutil.which("openssl"), "the openssl command is needed (apt-get install openssl)")
    def test_https_remote_given_by_ip_address(self):
        # wolfSSL matches an IP address against the certificate's IP subjectAltName.
        self.https_upload("127.0.0.1")


@unittest.skipIf(EMULATED, "HTTP/2 and resumption are proved on the native architecture; the "
                 "empty-root https tests run the arm64 binary under qemu")
class LayerHttp2Test(test_http2.Http2Test):
    """test/integration/test_http2.py on the layer's binary: one connection for a burst, TLS
    resumption from the share handle after the remote closed the idle connection, by name and by
    IP address."""
    binary = BINARY


@unittest.skipIf(EMULATED, "the empty-root https tests run the arm64 binary under qemu")
class LayerTlsTest(test_tls.TlsTest):
    """test/integration/test_tls.py on the layer's binary: a remote verified with SSL_CERT_FILE, an
    unverifiable one refused and not retried, an unreadable or certificate-less SSL_CERT_FILE a
    clear error."""
    binary = BINARY


class SelfProfileTest(Case):
    """The static binary keeps what the self-profiler needs: its .symtab names our functions and
    the libraries', and frame pointers in every dependency (musl included) carry the stacks up to
    main. Run outside the empty root: the profiler reads /proc/self/exe, which Lambda has."""

    @unittest.skipIf(EMULATED, "SIGPROF sampling under qemu-user measures qemu, not the extension")
    def test_self_profile_reaches_main_and_names_our_functions(self):
        remote = RecordingRemote().start()
        self.addCleanup(remote.stop)
        port = free_port()
        ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": port,
                         "PYROSCOPE_REMOTE_ADDRESS": remote.url,
                         "PYROSCOPE_SELF_PROFILING": "true"}, binary=BINARY)
        self.addCleanup(ext.kill)
        ext.start(timeout=START_TIMEOUT)
        body = os.urandom(256 * 1024)
        path = "/ingest?name=app.cpu&from=1&until=2"
        cpu_s, deadline = 0.0, time.monotonic() + 20
        while cpu_s < 0.5 and time.monotonic() < deadline:  # enough CPU for ~50 samples
            for _ in range(20):
                self.assertEqual(http_exchange(port, post(path, body))[0].status, 200)
            with open("/proc/%d/stat" % ext.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        ext.signal_term()  # the last self-profile is queued before the drain
        self.assertEqual(ext.wait_exit(10), 0, ext.log())
        profiles = [r for r in remote.requests
                    if r.params["name"][0].startswith("pyroscope.lambda.extension")]
        self.assertEqual(len(profiles), 1, ext.log())
        lines = profiles[0].body.decode().splitlines()
        samples = {}
        for line in lines:
            m = re.match(r"^(.+) (\d+)$", line)
            self.assertTrue(m, line)
            samples[m.group(1)] = int(m.group(2))
        total = sum(samples.values())
        from_main = sum(n for st, n in samples.items() if "main" in st.split(";"))
        named = {f for st in samples for f in st.split(";")}
        report("self-profile", "%d samples for %.2f s of CPU, %d%% of them rooted at main"
               % (total, cpu_s, 100 * from_main // max(total, 1)))
        self.assertGreater(total, 10)
        self.assertGreaterEqual(from_main / total, 0.6, "\n".join(lines[:20]))
        ours = {"on_read", "on_message_complete", "build_upload", "on_poll", "relay_upload",
                "start_transfers", "finish_transfer", "drain_finished", "llhttp_execute"}
        self.assertTrue(named & ours, sorted(named)[:40])
        self.assertFalse(any(f.startswith("[unknown]") for f in named if f), sorted(named)[:40])


class HostNameRemoteTest(Case):
    """Issue 12's scenario for the static binary (curl with c-ares): a remote named by a host name
    that only a private /etc/hosts knows, 1,000 uploads each on a fresh client connection, the
    name resolved again for every upload. Not one client may go unanswered."""

    def test_every_client_answered_and_every_upload_delivered(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, True)
        prefix = private_hosts_prefix(tmp)
        if EMULATED:
            if not QEMU:
                raise unittest.SkipTest("qemu-aarch64-static is needed (apt-get install qemu-user-static)")
            prefix.append(QEMU)
        remote = RecordingRemote().start()
        self.addCleanup(remote.stop)
        remote.close_each = True  # a new connection, so a new resolve, per upload
        ext = Extension({"PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_RELAY_PORT": free_port(),
                         "PYROSCOPE_REMOTE_ADDRESS": "http://%s:%d" % (HOST, remote.port),
                         "PYROSCOPE_LOG_LEVEL": "debug", "PLE_TEST_DNS_CACHE_TIMEOUT": "0"},
                        binary=BINARY, prefix=prefix)
        self.addCleanup(ext.kill)
        ext.start(timeout=START_TIMEOUT)
        fig = check_scenario(self, ext, remote, 1000, resolver_sockets=False)
        report("host-name remote, 1000 uploads on fresh connections", "0 unanswered; sockets %s"
               % " ".join("%s=%d" % kv for kv in sorted(fig.items())))


if __name__ == "__main__":
    for f in (ZIP, BINARY):
        if not os.path.exists(f):
            sys.exit("no %s: build it first with make -f layer.mk ARCH=%s" % (f, ARCH))
    unittest.main()
