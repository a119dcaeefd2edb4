"""--version and --help of the real binary: exit 0, say what they must (the version from the
VERSION file, the libraries' versions, the variables, the README), and touch nothing: a Lambda
Extensions API emulator, a remote and a proxy that the environment points to all see nothing.
The first log line and the shutdown summary carry the version.

Run: cd test/integration && PYTHONPATH=../support PLE_BINARY=... python3 -m unittest -v test_about"""
import os
import re
import subprocess
import unittest

from harness import BINARY, DevModeCase, LambdaCase, free_port

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
with open(os.path.join(ROOT, "VERSION")) as f:
    VERSION = f.read().strip()


def config_variables():
    """Every PYROSCOPE_* and XRAYPROFILE_* name that src/config.c reads."""
    with open(os.path.join(ROOT, "src", "config.c")) as f:
        return sorted(set(re.findall(r'"((?:PYROSCOPE|XRAYPROFILE)_[A-Z0-9_]+)"', f.read())))


class About(LambdaCase):
    def run_binary(self, *args):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "AWS_LAMBDA_RUNTIME_API": self.emu.address,
               "PYROSCOPE_REMOTE_ADDRESS": self.remote.url,
               "PYROSCOPE_RELAY_PORT": str(free_port()),
               "PYROSCOPE_SELF_PROFILING": "true",
               "HTTPS_PROXY": self.remote.url, "http_proxy": self.remote.url,
               "ALL_PROXY": self.remote.url}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        p = subprocess.run([BINARY] + list(args), env=env, capture_output=True, timeout=30)
        # The process has exited: nothing it could have sent is still on its way.
        with self.remote.cond:
            self.assertEqual((self.remote.arrivals, self.remote.connections), ([], []))
        with self.emu.cond:
            self.assertEqual(self.emu.calls, [])
        return p

    def test_version(self):
        for flag in ("--version", "-V"):
            p = self.run_binary(flag)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = p.stdout.decode()
            lines = out.splitlines()
            self.assertEqual(lines[0], "pyroscope-lambda-extension %s" % VERSION)
            self.assertRegex(lines[1], r"^libcurl \d+\.\d+\.\d+.*, libuv \d+\.\d+\.\d+, "
                                       r"jansson \d+\.\d+(\.\d+)?, llhttp \d+\.\d+\.\d+$")
            self.assertEqual(p.stderr, b"")

    def test_help(self):
        for flag in ("--help", "-h"):
            p = self.run_binary(flag)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = p.stdout.decode()
            self.assertIn("Usage: pyroscope-lambda-extension", out)
            self.assertIn("README.md", out)
            # Every variable config.c reads is named, or matched by a NAME_* pattern in it.
            named = set(re.findall(r"[A-Z][A-Z0-9_]+(?:\*[A-Z0-9_]*)?", out))
            rxs = [re.compile(n.replace("*", r"\w+")) for n in named if "*" in n]
            for var in config_variables():
                self.assertTrue(var in named or any(rx.fullmatch(var) for rx in rxs),
                                "--help does not name %s" % var)

    def test_unknown_argument(self):
        p = self.run_binary("--nope")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stdout, b"")
        self.assertIn(b"unknown argument '--nope'", p.stderr)
        self.assertIn(b"Usage:", p.stderr)


class VersionInTheLog(DevModeCase):
    def test_first_line_and_summary(self):
        ext = self.start()
        self.assertEqual(ext.stop(), 0, ext.log())
        lines = ext.log_lines()
        self.assertRegex(lines[0], r'level=info msg=starting version=%s$' % re.escape(VERSION))
        ext.wait_for_log(r'msg="shutdown summary" .* version=%s$' % re.escape(VERSION))


if __name__ == "__main__":
    unittest.main()
