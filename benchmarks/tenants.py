"""Tenant creation and a no-op migration over many tenants.

make bench BENCH_ARGS=tenants   (BENCH_TENANTS=200 by default)
Targets: creation p95 < 0.5 s; a no-op migrate_schemas over 200 tenants < 60 s.
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.common import setup_django, summary_ms


def main() -> dict[str, Any]:
    setup_django(fresh=True)
    from django.core.management import call_command

    from onboarding.services import onboard_tenant

    count = int(os.environ.get("BENCH_TENANTS", "200"))
    call_command("migrate_platform", verbosity=0)
    timings = []
    for index in range(count):
        started = time.perf_counter()
        onboard_tenant(
            slug=f"bench{index:04d}",
            name=f"Bench {index}",
            owner_email=f"owner{index}@bench.test",
            owner_password="Sturdy-Pass-42",
        )
        timings.append(time.perf_counter() - started)
    creation = summary_ms(timings)
    print(f"tenant creation ({count}): mean {creation['mean_ms']} ms, p95 {creation['p95_ms']} ms")
    started = time.perf_counter()
    call_command("migrate_schemas", tenant=True, interactive=False, verbosity=0, executor="multiprocessing")
    migrate_s = round(time.perf_counter() - started, 2)
    print(f"no-op migrate_schemas over {count} tenants (multiprocessing executor): {migrate_s} s")
    return {"tenants": count, "creation": creation, "noop_migrate_s": migrate_s}


if __name__ == "__main__":
    main()
