"""Entry point for `dramatiq config.worker`: sets Django up and imports every app's actors."""

from __future__ import annotations

import importlib
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.apps import apps  # noqa: E402

import config.dramatiq  # noqa: E402,F401


def import_actors() -> None:
    for app in apps.get_app_configs():
        try:
            importlib.import_module(f"{app.name}.actors")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app.name}.actors":
                raise


import_actors()
