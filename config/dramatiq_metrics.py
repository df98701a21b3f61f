"""Dramatiq's own metrics (messages, errors, retries, durations, in progress per queue and actor) in the
shared multiprocess directory, exported by the web's /metrics with everything else.

Used by `dramatiq config.worker` when PROMETHEUS_MULTIPROC_DIR is set. Dramatiq's Prometheus middleware,
used as it ships, would not mix with ours: it points PROMETHEUS_MULTIPROC_DIR at its own directory
(`dramatiq_prom_db`, read when its module is imported), serves that directory on port 9191 from a forked
process (a second worker copy on the host cannot bind it), marks processes dead by bare PID (our files
are named by host and PID) and leaves its delayed-messages gauge of dead processes in the totals.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

# Before the import below: Dramatiq reads its directory from here at import time.
os.environ["dramatiq_prom_db"] = settings.PROMETHEUS_MULTIPROC_DIR  # noqa: SIM112 (Dramatiq spells it so)

import dramatiq
from dramatiq.middleware.prometheus import Prometheus
from prometheus_client import CollectorRegistry, Gauge

from config.prometheus import mark_this_process_dead


class WorkerMetrics(Prometheus):
    @property
    def forks(self) -> list[Any]:
        # The web's /metrics exports the shared directory; no exposition server of Dramatiq's own.
        return []

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        super().after_process_boot(broker)
        # Dramatiq's gauge keeps one series per PID forever ("all" mode); summed over live processes,
        # a dead worker's delayed messages drop out of the total.
        self.inprogress_delayed_messages = Gauge(
            "dramatiq_delayed_messages_inprogress",
            "The number of delayed messages in memory.",
            ["queue_name", "actor_name"],
            registry=CollectorRegistry(),
            multiprocess_mode="livesum",
        )

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        mark_this_process_dead(settings.PROMETHEUS_MULTIPROC_DIR)
