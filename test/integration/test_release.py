"""layer.mk's version, timestamp, clean and release rules, without building a layer: run on
copies of layer.mk and VERSION in temporary directories (no .git there, as in a release tarball).
The layer itself is proven by `make -f layer.mk test` (test/layer/).

Run: cd test/integration && python3 -m unittest -v test_release"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXED_EPOCH = "315532800"  # 1980-01-01T00:00:00Z


def make(cwd, *targets, **env):
    e = dict(os.environ)
    e.pop("SOURCE_DATE_EPOCH", None)
    e.pop("MAKEFLAGS", None)
    e.update(env)
    return subprocess.run(["make", "-f", "layer.mk"] + list(targets), cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=60)


class LayerMk(unittest.TestCase):
    def tree(self, version=None, changelog=None):
        d = tempfile.mkdtemp(prefix="ple-release-")
        self.addCleanup(shutil.rmtree, d, True)
        shutil.copy(os.path.join(ROOT, "layer.mk"), d)
        if version is None:
            shutil.copy(os.path.join(ROOT, "VERSION"), d)
        else:
            with open(os.path.join(d, "VERSION"), "w") as f:
                f.write(version + "\n")
        if changelog is not None:
            with open(os.path.join(d, "CHANGELOG.md"), "w") as f:
                f.write(changelog)
        # Not inside any git work tree, so that `git log` finds nothing.
        probe = subprocess.run(["git", "-C", d, "rev-parse"], capture_output=True)
        if probe.returncode == 0:
            self.skipTest("the temporary directory is inside a git work tree")
        return d

    def test_epoch_without_git_is_fixed(self):
        p = make(self.tree(), "print-epoch")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), FIXED_EPOCH + " a fixed epoch (no SOURCE_DATE_EPOCH, no git)")

    def test_source_date_epoch_wins(self):
        d = self.tree()
        p = make(d, "print-epoch", SOURCE_DATE_EPOCH="1700000000")
        self.assertEqual(p.stdout.strip(), "1700000000 SOURCE_DATE_EPOCH")
        p = make(ROOT, "print-epoch", SOURCE_DATE_EPOCH="1700000001")
        self.assertEqual(p.stdout.strip(), "1700000001 SOURCE_DATE_EPOCH")
        p = make(d, "print-epoch", SOURCE_DATE_EPOCH="yesterday")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("SOURCE_DATE_EPOCH must be a number of seconds", p.stderr)

    def test_epoch_in_git_is_the_commit_time(self):
        commit = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%ct"],
                                capture_output=True, text=True)
        if commit.returncode != 0 or not commit.stdout.strip():
            self.skipTest("not a git checkout")
        p = make(ROOT, "print-epoch")
        self.assertEqual(p.stdout.strip(), commit.stdout.strip() + " the commit time")

    def test_clean_removes_every_layer_build_dir(self):
        d = self.tree()
        made = ["build/layer-x86_64/prefix", "build/layer-x86_64-musl-debian/ext",
                "build/layer-arm64", "build/layer-src/curl", "dist/release-0.0.1"]
        for m in made + ["build/test"]:
            os.makedirs(os.path.join(d, m))
        p = make(d, "clean")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(os.listdir(d)), ["VERSION", "build", "layer.mk"])
        self.assertEqual(os.listdir(os.path.join(d, "build")), ["test"])  # not ours: kept

    def test_release_needs_a_changelog_section(self):
        d = self.tree(version="9.9.9", changelog="# Changelog\n\n## 9.9.8\n\n- older\n")
        p = make(d, "release")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("CHANGELOG.md has no '## 9.9.9' section", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "dist")))

    def test_the_version_has_its_changelog_section(self):
        with open(os.path.join(ROOT, "VERSION")) as f:
            version = f.read().strip()
        self.assertRegex(version, r"^\d+\.\d+\.\d+$")
        with open(os.path.join(ROOT, "CHANGELOG.md")) as f:
            self.assertRegex(f.read(), r"(?m)^## %s( |$)" % re.escape(version))

    def test_missing_version_file(self):
        d = self.tree()
        os.remove(os.path.join(d, "VERSION"))
        p = make(d, "print-epoch")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("VERSION file is missing or empty", p.stderr)


if __name__ == "__main__":
    unittest.main()
