#!/usr/bin/env python3
"""Cold start only: exec -> listening and exec -> register, for the extension and for trivial.c,
interleaved in the same run (the same code as bench.py's cold-start section).
    python3 test/bench/coldstart.py [binary]     (RUNS=21 by default)"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else bench.ensure_binary()
    res = bench.coldstart(os.path.abspath(binary), int(os.environ.get("RUNS", "21")))
    print("%-11s %-40s %s" % ("", "exec -> listening: median (min-max)", "exec -> register: median (min-max)"))
    for name in ("trivial C", "extension"):
        l, g = res[name]["exec_to_listening"], res[name]["exec_to_register"]
        print("%-11s %8.2f ms (%.2f-%.2f)%17s %8.2f ms (%.2f-%.2f)" % (
            name, l["median_ms"], l["min_ms"], l["max_ms"], "", g["median_ms"], g["min_ms"], g["max_ms"]))
    os.makedirs(bench.OUT, exist_ok=True)
    with open(os.path.join(bench.OUT, "coldstart.json"), "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
