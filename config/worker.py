"""Entry point for `dramatiq config.worker`: sets Django up and imports every app's actors."""

from __future__ import annotations

import importlib
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Worker threads live as long as the process, so their connections are worth keeping (the web's are not:
# see DB_CONN_MAX_AGE in config/settings.py). Without this every job paid for a new PostgreSQL backend.
os.environ.setdefault("DB_CONN_MAX_AGE", "60")
django.setup()

from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402

import tenants.jobs  # noqa: E402
from core.heartbeat import WorkerHeartbeat  # noqa: E402

tenants.jobs.broker.add_middleware(WorkerHeartbeat())  # `manage.py healthcheck --process worker`
if settings.PROMETHEUS_MULTIPROC_DIR:
    # Before process_boot, which the Dramatiq CLI emits right after importing this module.
    from config.dramatiq_metrics import WorkerMetrics

    tenants.jobs.broker.add_middleware(WorkerMetrics())


def import_actors() -> None:
    for app in apps.get_app_configs():
        try:
            importlib.import_module(f"{app.name}.actors")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app.name}.actors":
                raise


import_actors()
