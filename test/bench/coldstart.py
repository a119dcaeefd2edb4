#!/usr/bin/env python3
"""Cold start: exec -> listening on the relay port, and exec -> the /register request arriving,
for the extension and, in the same run, for trivial.c (bind + connect + write, nothing else).

Both are measured the same way: the clock starts just before fork+exec, "listening" is the first
successful connect to the relay port (tried in a tight loop), and "register" is the moment the
first bytes of the register request are read on a raw loopback socket acting as the Extensions
API. Prints medians and spreads of N runs (default 21), and writes JSON next to the binary.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(argv, extra_env):
    api = socket.socket()
    api.bind(("127.0.0.1", 0))
    api.listen(4)
    api.settimeout(5)
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % api.getsockname()[1],
           "PYROSCOPE_RELAY_PORT": str(port), "PYROSCOPE_LOG_LEVEL": "error",
           "PYROSCOPE_REMOTE_ADDRESS": "http://127.0.0.1:9"}
    env.update(extra_env)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listening = None
    deadline = t0 + 5
    while listening is None and time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                listening = time.perf_counter() - t0
        except OSError:
            pass
    conn, _ = api.accept()
    conn.settimeout(5)
    conn.recv(1)
    registered = time.perf_counter() - t0
    # Answer like Lambda would, then end the run.
    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    conn.close()
    api.close()
    return listening, registered


def summarize(samples):
    ms = sorted(x * 1000 for x in samples if x is not None)
    return {"median_ms": round(statistics.median(ms), 3), "min_ms": round(ms[0], 3),
            "max_ms": round(ms[-1], 3), "runs": len(ms)}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../build/pyroscope-lambda-extension")
    runs = int(os.environ.get("RUNS", "21"))
    out_dir = os.path.dirname(os.path.abspath(binary))
    trivial = os.path.join(out_dir, "coldstart-trivial")
    subprocess.check_call(["cc", "-O2", "-o", trivial, os.path.join(HERE, "trivial.c")])
    results = {}
    for name, argv in (("trivial C", [trivial]), ("extension", [binary])):
        lst, reg = [], []
        for i in range(runs):
            a, b = one_run(argv, {})
            lst.append(a)
            reg.append(b)
        results[name] = {"exec_to_listening": summarize(lst), "exec_to_register": summarize(reg)}
    print("%-12s %28s %28s" % ("", "exec->listening median (min-max)", "exec->register median (min-max)"))
    for name, r in results.items():
        l, g = r["exec_to_listening"], r["exec_to_register"]
        print("%-12s %14.2f ms (%.2f-%.2f) %14.2f ms (%.2f-%.2f)" % (
            name, l["median_ms"], l["min_ms"], l["max_ms"], g["median_ms"], g["min_ms"], g["max_ms"]))
    with open(os.path.join(out_dir, "coldstart.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
