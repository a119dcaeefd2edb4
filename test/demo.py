#!/usr/bin/env python3
"""The local demo of the whole product (run through test/demo.sh).

  emulator (Extensions API) <── register / event/next ── extension ── uploads ──> remote
                                                            ^
                          synthetic function ── pprof ──────┘ http://localhost:4040

It prints what happens: for each invoke, how long the extension took to ask for the next event
(with flush on invoke, after the uploads still in flight) and how long each of the function's
pushes took to be answered; then the extension's shutdown summary.
"""
import argparse
import http.client
import os
import random
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "support"))

import pprof  # noqa: E402
from lambda_emu import LambdaEmulator  # noqa: E402
from remote import RecordingRemote  # noqa: E402

BINARY = os.environ.get("PLE_BINARY", os.path.join(HERE, "..", "build", "pyroscope-lambda-extension"))


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_port(wanted):
    if port_free(wanted):
        return wanted
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    print("port %d is busy; the relay listens on %d instead" % (wanted, port))
    return port


_print_lock = threading.Lock()


def say(text):
    """One line at a time: the extension's log is echoed from another thread."""
    with _print_lock:
        print(text, flush=True)


def echo_logs(stream, lines):
    for raw in stream:
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        say("  [extension] " + line)


def uploads_of(remote, invoke_no, before):
    """How many uploads of that invoke the remote had answered 2xx by `before` (monotonic)."""
    return sum(1 for r in list(remote.requests)
               if r.params.get("name", [""])[0].find("invoke=%d" % invoke_no) >= 0
               and r.answered is not None and r.answered <= before)


def explain(remote, i, pushed_by_invoke, t_invoke, t_next):
    """Why the extension asked for the next event when it did, from what the remote had by then."""
    own = uploads_of(remote, i, t_next)
    prev = pushed_by_invoke.get(i - 1, 0)
    prev_now = uploads_of(remote, i - 1, t_next) - uploads_of(remote, i - 1, t_invoke)
    if own:
        return "after this invoke's %d upload%s reached the remote: flushed at its end" % (
            own, "" if own == 1 else "s")
    if prev_now:
        return "after the %d upload%s of invoke %d reached the remote: flushed at the next invoke" % (
            prev_now, "" if prev_now == 1 else "s", i - 1)
    if prev and uploads_of(remote, i - 1, t_invoke) == prev:
        return "invoke %d's uploads had already reached the remote" % (i - 1)
    return "no upload was in flight"


def push_profiles(port, invoke_no, rng):
    """The function's profiler: two uploads, as pyroscope-go sends them. Returns client waits."""
    waits = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for kind in ("cpu", "alloc_objects"):
        path, headers, body = pprof.go_client_upload(
            "demo.function", {"function": "demo-function", "profile": kind, "invoke": str(invoke_no)}, rng)
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        waits.append((time.perf_counter() - t0) * 1000)
        if resp.status != 200:
            print("  function: upload answered %d" % resp.status)
    conn.close()
    return waits


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--invokes", type=int, default=5)
    ap.add_argument("--port", type=int, default=4040)
    ap.add_argument("--remote-delay", type=float, default=0.05,
                    help="seconds the recording remote takes to answer (to make flushes visible)")
    args = ap.parse_args()
    rng = random.Random(42)

    real_remote = os.environ.get("PYROSCOPE_REMOTE_ADDRESS")
    remote = None if real_remote else RecordingRemote()
    if remote:
        remote.start()
        remote.delay = args.remote_delay
    port = pick_port(args.port)
    with LambdaEmulator(function_name="demo-function") as emu:
        env = {k: v for k, v in os.environ.items() if k.startswith("PYROSCOPE_") or k == "PATH"}
        env.setdefault("PYROSCOPE_FLUSH_ON_INVOKE", "true")
        env.setdefault("PYROSCOPE_LOG_LEVEL", "info")
        env.setdefault("PYROSCOPE_REMOTE_ADDRESS", real_remote or remote.url)
        env["PYROSCOPE_RELAY_PORT"] = str(port)
        env["AWS_LAMBDA_RUNTIME_API"] = emu.address
        print("remote: %s   emulator: %s   relay: http://localhost:%d   flush on invoke: %s" % (
            env["PYROSCOPE_REMOTE_ADDRESS"], emu.address, port, env["PYROSCOPE_FLUSH_ON_INVOKE"]))
        t_exec = time.monotonic()
        proc = subprocess.Popen([BINARY], env=env, stderr=subprocess.PIPE)
        emu.process = proc
        lines = []
        reader = threading.Thread(target=echo_logs, args=(proc.stderr, lines), daemon=True)
        reader.start()
        try:
            reg = emu.wait_calls("/register", 1, timeout=5)[0]
            say("registered %.1f ms after exec" % ((reg.mono - t_exec) * 1000))
            emu.wait_calls("/event/next", 1, timeout=5)
            flush = env["PYROSCOPE_FLUSH_ON_INVOKE"].lower() in ("1", "t", "true")
            say("each invoke: the function pushes 2 profiles while it runs; 'answered' is how long "
                "each push to localhost:4040 took until the relay's 200 (the time the function's "
                "profiler is held up); 'next event' is how long after the function returned the "
                "extension asked Lambda for the next event, which ends the invoke (Lambda bills "
                "it as PostRuntimeExtensionsDuration)%s" % (
                    "; with flush on invoke it first finishes uploads, at the end of this invoke "
                    "or of the next one (PYROSCOPE_FLUSH_STRATEGY, default auto: at the end while "
                    "invokes are 10 s or more apart, at the next invoke while they come more "
                    "often, as here after the first)" if flush else ""))
            pushed_by_invoke = {}
            for i in range(1, args.invokes + 1):
                nexts = len(emu.calls_to("/event/next"))
                done = {}

                def handler(i=i, done=done):  # the function: its profiler pushes as it works
                    done["waits"] = push_profiles(port, i, rng)

                t_invoke = time.monotonic()
                inv = emu.invoke(timeout_ms=3000, handler=handler)["invocation"]
                # The extension ends the invoke with its next /event/next.
                nxt = emu.wait_calls("/event/next", nexts + 1, timeout=5)[-1]
                deadline = time.monotonic() + 5
                while "waits" not in done or inv.runtime_done is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the function did not return within 5 s")
                    time.sleep(0.005)
                waits = done["waits"]
                pushed_by_invoke[i] = len(waits)
                after_return = (nxt.mono - inv.runtime_done) * 1000
                if not flush:
                    why = "flush on invoke is off"
                elif remote is None:
                    why = "a real remote: see the extension's log"
                else:
                    why = explain(remote, i, pushed_by_invoke, t_invoke, nxt.mono)
                say("invoke %d: answered in %s ms; next event %s (%s)" % (
                    i, " and ".join("%.2f" % w for w in waits),
                    "%.1f ms after the function returned" % after_return if after_return >= 0
                    else "%.1f ms before the function returned" % -after_return, why))
            emu.shutdown(deadline_in_ms=2000)
            code = proc.wait(timeout=5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(timeout=2)
        say("extension exited with %d%s" % (code, " (SIGKILLed at the deadline)" if emu.killed else ""))
    if remote:
        got = remote.requests
        print("the recording remote received %d uploads, %d bytes" % (
            len(got), sum(len(r.body) for r in got)))
        remote.stop()
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
