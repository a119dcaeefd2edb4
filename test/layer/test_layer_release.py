"""Proofs about the layer's version and release metadata, on the zip `make -f layer.mk` built: the
versions file names our version and where the zip's timestamps came from, every entry carries
that timestamp, the binary's --version says the same and lists the versions file beside it, and
`publish` prints only the LayerVersionArn (a stand-in `aws` records what it was asked).

Run by `make -f layer.mk test [ARCH=arm64]` after test_layer.py, with the same environment."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
ARCH = os.environ.get("PLE_LAYER_ARCH", "x86_64")
ZIP_REL = os.environ.get("PLE_LAYER_ZIP", "dist/pyroscope-lambda-extension-%s.zip" % ARCH)
ZIP = os.path.join(ROOT, ZIP_REL)
NAME = "pyroscope-lambda-extension"
QEMU = shutil.which("qemu-aarch64-static") if ARCH == "arm64" and os.uname().machine != "aarch64" else None
with open(os.path.join(ROOT, "VERSION")) as f:
    VERSION = f.read().strip()
ARN = "arn:aws:lambda:eu-west-1:123456789012:layer:%s:7" % NAME


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SOURCE_DATE_EPOCH")}
    env.update(extra)
    return env


class Versions(unittest.TestCase):
    def read_zip(self):
        with zipfile.ZipFile(ZIP) as z:
            return z.infolist(), z.read("extensions/.%s.versions" % NAME).decode()

    def test_versions_file_and_timestamps(self):
        infos, versions = self.read_zip()
        lines = versions.strip().splitlines()
        self.assertEqual(lines[0], "%s %s" % (NAME, VERSION))
        self.assertRegex(lines[-1], r"^# timestamps: \d+ \((SOURCE_DATE_EPOCH|the commit time|"
                                    r"a fixed epoch \(no SOURCE_DATE_EPOCH, no git\))\)$")
        epoch = int(lines[-1].split()[2])
        # The time of the commit the zip was built at: HEAD's or, when nothing that goes into
        # the zip changed since, an earlier one.
        commits = subprocess.run(["git", "-C", ROOT, "log", "--format=%ct"],
                                 capture_output=True, text=True)
        if "the commit time" in lines[-1]:
            self.assertIn(str(epoch), commits.stdout.split())
        want = time.gmtime(epoch + epoch % 2)[:6]  # zip rounds up to even seconds; in UTC
        for i in infos:
            self.assertEqual(i.date_time, want, i.filename)

    def test_binary_version_names_the_versions_file(self):
        d = tempfile.mkdtemp(prefix="ple-layer-version-")
        self.addCleanup(shutil.rmtree, d, True)
        with zipfile.ZipFile(ZIP) as z:
            z.extractall(d)
        exe = os.path.join(d, "extensions", NAME)
        os.chmod(exe, 0o755)
        cmd = ([QEMU] if QEMU else []) + [exe, "--version"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin"})
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.splitlines()
        self.assertEqual(out[0], "%s %s" % (NAME, VERSION))
        self.assertRegex(out[1], r"^libcurl \d.*, libuv \d.*, jansson \d.*, llhttp \d")
        _, versions = self.read_zip()
        if QEMU is None:  # under qemu /proc/self/exe is qemu itself
            self.assertIn("built from (%s/extensions/.%s.versions):" % (d, NAME), p.stdout)
            for line in versions.strip().splitlines():
                self.assertIn("  " + line, out)
        sys.stderr.write("\n  layer %s --version:\n    %s" % (ARCH, "\n    ".join(out)))


class Publish(unittest.TestCase):
    def test_prints_only_the_layer_version_arn(self):
        d = tempfile.mkdtemp(prefix="ple-fake-aws-")
        self.addCleanup(shutil.rmtree, d, True)
        fake, args = os.path.join(d, "aws"), os.path.join(d, "args")
        with open(fake, "w") as f:
            f.write('#!/bin/sh\nprintf "%%s\\n" "$@" > "%s"\necho "%s"\n' % (args, ARN))
        os.chmod(fake, 0o755)
        p = subprocess.run(["make", "-f", "layer.mk", "publish", "ARCH=" + ARCH,
                            "REGION=eu-west-1", "AWS=" + fake],
                           cwd=ROOT, capture_output=True, text=True, timeout=600, env=clean_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, ARN + "\n")
        with open(args) as f:
            got = f.read().split("\n")
        for pair in (["--query", "LayerVersionArn"], ["--output", "text"],
                     ["--compatible-architectures", ARCH], ["--region", "eu-west-1"],
                     ["--zip-file", "fileb://" + ZIP_REL], ["--license-info", "Apache-2.0"]):
            i = got.index(pair[0])
            self.assertEqual(got[i:i + 2], pair)

    def test_needs_a_region(self):
        p = subprocess.run(["make", "-f", "layer.mk", "publish", "ARCH=" + ARCH, "AWS=false"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, env=clean_env())
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stdout, "")
        self.assertIn("set REGION", p.stderr)


if __name__ == "__main__":
    if not os.path.exists(ZIP):
        sys.exit("no %s: build it first with make -f layer.mk ARCH=%s" % (ZIP, ARCH))
    unittest.main()
