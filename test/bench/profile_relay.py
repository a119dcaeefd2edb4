"""Where the relay's CPU goes, per relayed upload (bench.py --profile).

Under a fixed load (wrk, 16 KiB multipart pprof, 16 connections, dev mode, nginx sink):
  1. strace -c -f for a fixed number of uploads: syscalls per relayed upload, by name;
  2. valgrind --tool=callgrind for a fixed number of uploads, counters zeroed after start-up:
     instructions per relayed upload, top functions by self and by inclusive cost;
  3. perf record (cpu-clock; this VM has no hardware counters) at full speed: the share of
     kernel and user time, by library and by symbol.
Raw outputs are kept in build/bench/profile-<time>/. Numbers are reported, never judged."""

import os
import re
import signal
import subprocess
import time

import bench
from bench import DevExtension, Sink, log, run_wrk, spawn, stop


# Frames above the event loop: 100% inclusive, no self cost of note; left out of both lists.
ANCESTORS = re.compile(r"PROGRAM TOTALS|\(below main\)|__libc_start_main|main\.c:main |"
                       r"ld-linux-x86-64\.so\.2\]$")


def fixed_load(ext, sink, body, n, conns=16, limit_s=120):
    """Sends uploads until the sink has counted n more, then waits for the queue to drain.
    Returns how many the sink counted."""
    base = sink.count()
    run_wrk(ext.port, body, conns, limit_s, until=lambda: sink.count() - base >= n)
    total, _ = sink.wait_quiet(quiet=1.0, timeout=120)
    return total - base


def strace_counts(binary, work, sink, body, n):
    out = os.path.join(work, "strace-c.txt")
    ext = DevExtension(binary, work, sink.url, wrapper=["strace", "-c", "-f", "-o", out])
    try:
        time.sleep(0.5)
        delivered = fixed_load(ext, sink, body, n)
    finally:
        ext.stop(timeout=30)
    time.sleep(0.3)
    rows = []
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$", line)
            if m and m.group(6) != "total":
                rows.append((m.group(6), int(m.group(4)), int(m.group(5) or 0)))
    rows.sort(key=lambda r: -r[1])
    # The start-up's syscalls (loader, config, curl init) are counted too; over thousands of
    # uploads they are a small fraction.
    return delivered, rows, out


def callgrind(binary, work, sink, body, n):
    out = os.path.join(work, "callgrind.out")
    ext = DevExtension(binary, work, sink.url,
                       wrapper=["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                                "--vgdb=yes", "--dump-instr=no"])
    zeroed = False
    try:
        time.sleep(1.0)
        # Leave the start-up out: zero the counters once the extension listens.
        if bench.shutil.which("callgrind_control"):
            zeroed = subprocess.run(["callgrind_control", "-z", str(ext.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=20).returncode == 0
        delivered = fixed_load(ext, sink, body, n, conns=8)
    finally:
        ext.stop(timeout=60)
    time.sleep(0.5)
    files = sorted(f for f in os.listdir(work) if f.startswith("callgrind.out"))
    # With -z the counters before zeroing are not in the final dump; the final dump is the file
    # itself (callgrind.out); earlier dumps, if any, get suffixes.
    path = out if os.path.exists(out) else os.path.join(work, files[-1])

    def annotate(inclusive):
        r = subprocess.run(["callgrind_annotate", "--inclusive=%s" % ("yes" if inclusive else "no"),
                            "--threshold=100", path], capture_output=True, text=True, timeout=120)
        rows = []
        total = None
        for line in r.stdout.splitlines():
            m = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(\S.*)$", line)
            if m and not ANCESTORS.search(m.group(3)):
                rows.append((int(m.group(1).replace(",", "")), float(m.group(2)), m.group(3)))
            m = re.match(r"\s*([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", line)
            if m:
                total = int(m.group(1).replace(",", ""))
        return total, rows

    total, self_rows = annotate(False)
    _, incl_rows = annotate(True)
    return delivered, total, self_rows, incl_rows, zeroed, path


def perf_record(binary, work, sink, body, seconds):
    data = os.path.join(work, "perf.data")
    ext = DevExtension(binary, work, sink.url)
    try:
        rec = spawn(["perf", "record", "-e", "cpu-clock", "-F", "4999", "-o", data, "-p", str(ext.pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        base = sink.count()
        run_wrk(ext.port, body, 16, seconds)
        sink.wait_quiet()
        delivered = sink.count() - base
        stop(rec, signal.SIGINT, 20)
    finally:
        ext.stop()

    def report(sort):
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                            "--percent-limit", "0.7"], capture_output=True, text=True, timeout=120)
        rows = []
        for line in r.stdout.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(.*\S)\s*$", line)
            if m and not line.lstrip().startswith("#"):
                rows.append((float(m.group(1)), re.sub(r"\s+", " ", m.group(2))))
        return rows

    return delivered, report("dso"), report("dso,sym")


def main(binary, args):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = os.path.join(bench.OUT, "profile-%s" % stamp)
    os.makedirs(work, exist_ok=True)
    n = 1000 if args.quick else 5000
    sink = Sink(work)
    try:
        bodies = bench.make_bodies(work)
        body = bodies[1]  # 16 KiB multipart pprof
        print("profile of %s (%s bytes): %s uploads, %d at a time from wrk; sink: nginx"
              % (binary, format(os.path.getsize(binary), ","), body["name"], 16))

        log("strace -c -f: %d uploads" % n)
        delivered, rows, path = strace_counts(binary, work, sink, body, n)
        total = sum(r[1] for r in rows)
        print("\nSyscalls per relayed upload (strace -c -f, %d delivered; start-up included; %s)"
              % (delivered, os.path.relpath(path, bench.ROOT)))
        print("  %-18s %10s %10s %8s" % ("syscall", "calls", "per upload", "errors"))
        for name, calls, errors in rows[:16]:
            print("  %-18s %10d %10.2f %8d" % (name, calls, calls / max(1, delivered), errors))
        print("  %-18s %10d %10.2f" % ("all", total, total / max(1, delivered)))

        log("callgrind: %d uploads" % (n // 2))
        delivered, ir, self_rows, incl_rows, zeroed, path = callgrind(binary, work, sink, body, n // 2)
        print("\nInstructions (callgrind Ir), %d delivered, %s; %s"
              % (delivered, "counters zeroed after start-up" if zeroed else "start-up included",
                 os.path.relpath(path, bench.ROOT)))
        if ir:
            print("  total %s Ir = %.0f Ir per relayed upload" % (format(ir, ","), ir / max(1, delivered)))
        print("  top 10 by self cost:")
        for cost, p, name in self_rows[:10]:
            print("    %5.1f%% %10.0f Ir/upload  %s" % (p, cost / max(1, delivered), name))
        print("  top 15 by inclusive cost:")
        for cost, p, name in incl_rows[:15]:
            print("    %5.1f%% %10.0f Ir/upload  %s" % (p, cost / max(1, delivered), name))

        secs = 3 if args.quick else 5
        log("perf record: %d s at full speed" % secs)
        delivered, dso, sym = perf_record(binary, work, sink, body, secs)
        print("\nperf record -e cpu-clock at full speed, %d s, %d delivered (%.0f/s)"
              % (secs, delivered, delivered / secs))
        print("  by object:")
        for p, name in dso[:8]:
            print("    %5.1f%%  %s" % (p, name))
        print("  top symbols (self):")
        for p, name in sym[:20]:
            print("    %5.1f%%  %s" % (p, name))
        print("\nraw files: %s" % os.path.relpath(work, bench.ROOT))
    finally:
        sink.close()
