"""`make bench`: runs every benchmark module in turn; each prints its numbers and returns a dict.

`make bench BENCH_ARGS="tenants"` runs one. Results are appended as JSON to .data/bench-results.jsonl;
docs/benchmarks.md records them with the command.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

# In the order they run; a module may be absent while its issue is open.
BENCHMARKS = ["tenants", "api", "whatsapp", "campaign", "webhook", "inbox", "knowledge", "ai", "sockets"]


def machine_ms() -> float:
    """Milliseconds one core of this machine takes for a fixed pure-Python loop (10 million additions),
    best of three: the same code's CPU per message differed 2.5x between two sessions' machines, so
    every result carries it and numbers are compared between runs of similar speed only."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    out = Path(".data/bench-results.jsonl")
    out.parent.mkdir(exist_ok=True)
    speed = machine_ms()
    print(f"machine: a fixed 10M-addition Python loop takes {speed} ms of CPU (best of 3; lower is faster)")
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"benchmarks.{name}":
                print(f"[{name}] not present, skipped")
                continue
            raise
        print(f"== {name}")
        result = module.main()
        # The machine's speed drifts (1.7x within minutes in the ninth session): taken again after each.
        result["machine_ms_after"] = machine_ms()
        print(f"machine after {name}: {result['machine_ms_after']} ms")
        with out.open("a") as handle:
            handle.write(
                json.dumps({"benchmark": name, "at": time.time(), "machine_ms": speed, **result}) + "\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
