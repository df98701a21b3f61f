"""How `manage.py simulate_inbound` reaches a number whose provider lives in a higher app (WAHA): that app
registers a simulator in its AppConfig.ready(), so whatsapp never imports it.

A simulator makes the provider's side deliver a customer's text to the running app, signed as the provider
signs it, and returns a line saying what it did; it raises SimulationError with a message for the user."""

from __future__ import annotations

from typing import Any, Protocol


class SimulationError(Exception):
    """The simulation could not run (a session not linked, the app unreachable): shown to the user."""


class Simulator(Protocol):
    def __call__(self, channel: Any, *, sender: str, text: str, name: str, webhook_base: str) -> str:
        """`sender`: the customer's number as digits; `webhook_base`: where the app listens
        (http://127.0.0.1:8000), for a simulator that posts to the app's webhook itself."""


_simulators: dict[str, Simulator] = {}


def register(provider: str, simulator: Simulator) -> None:
    _simulators[provider] = simulator


def simulator_for(provider: str) -> Simulator | None:
    return _simulators.get(provider)
