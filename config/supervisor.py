"""A small process supervisor for `make run`: every Procfile entry runs with its output prefixed by its name;
one that exits is started again after a backoff (1 s doubling up to 30 s, back to 1 s once it has stayed
up a while) instead of taking the others down; Ctrl-C or SIGTERM stops them all (SIGTERM to each process
group, SIGKILL after a grace period).

honcho, which `make run` used before, stops every process when one exits and has no restart; supervisord
and circus want a configuration file and a daemon of their own for what is forty lines here.

    python -m config.supervisor [-f Procfile]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# A process that stayed up this long is considered healthy again: its next crash restarts it at once.
STABLE_SECONDS = 30.0
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STOP_GRACE_SECONDS = 10.0
COLOURS = ("36", "33", "35", "32", "34", "31")


def read_procfile(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"{path}:{number}: expected 'name: command'")
        entries[name.strip()] = command.strip()
    return entries


@dataclass
class Process:
    name: str
    command: str
    colour: str
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    pumps: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        entries: dict[str, str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        out: IO[str] | None = None,
        stable_seconds: float = STABLE_SECONDS,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self.env = {**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"}
        self.cwd = cwd
        self.out = out or sys.stdout
        self.stable_seconds = stable_seconds
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stopping = threading.Event()
        self.width = max((len(name) for name in entries), default=0)
        self.colour = self.out.isatty() if hasattr(self.out, "isatty") else False
        self.lock = threading.Lock()
        self.processes = [
            Process(name, command, COLOURS[index % len(COLOURS)])
            for index, (name, command) in enumerate(entries.items())
        ]

    # -- output ---------------------------------------------------------------------------------------

    def say(self, process: Process | None, line: str) -> None:
        name = (process.name if process else "system").ljust(self.width)
        prefix = f"{time.strftime('%H:%M:%S')} {name} | "
        if self.colour and process is not None:
            prefix = f"\033[{process.colour}m{prefix}\033[0m"
        with self.lock:
            self.out.write(prefix + line.rstrip("\n") + "\n")
            self.out.flush()

    def _pump(self, process: Process, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.say(process, raw.decode(errors="replace"))
        stream.close()

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self, process: Process) -> None:
        # Each in a session of its own: the terminal's Ctrl-C reaches only us, and we stop each group once.
        popen = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {process.command}"],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        process.popen, process.started_at, process.restart_at = popen, time.monotonic(), None
        assert popen.stdout is not None
        pump = threading.Thread(target=self._pump, args=(process, popen.stdout), daemon=True)
        pump.start()
        process.pumps = [pump]
        self.say(process, f"started with pid {popen.pid}")

    def delay_after_exit(self, process: Process) -> float:
        if time.monotonic() - process.started_at >= self.stable_seconds:
            process.failures = 0
        delay = min(self.max_delay, self.first_delay * 2**process.failures)
        process.failures += 1
        return delay

    def step(self) -> None:
        """Notice exits and start what is due (one pass of the loop)."""
        now = time.monotonic()
        for process in self.processes:
            if process.popen is not None and process.popen.poll() is not None:
                code = process.popen.returncode
                for pump in process.pumps:
                    pump.join(timeout=1)
                process.popen = None
                delay = self.delay_after_exit(process)
                process.restart_at = now + delay
                self.say(process, f"exited with code {code}; restarting in {delay:.0f} s")
            elif process.popen is None and process.restart_at is not None and now >= process.restart_at:
                self.start(process)

    def run(self) -> int:
        for process in self.processes:
            self.start(process)
        while not self.stopping.wait(0.2):
            self.step()
        self.stop_all()
        return 0

    def stop_all(self) -> None:
        running = [p for p in self.processes if p.popen is not None and p.popen.poll() is None]
        for process in running:
            self.say(process, "stopping")
            self._signal(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            assert process.popen is not None
            try:
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(process, "did not stop in time: killed")
                self._signal(process, signal.SIGKILL)
                process.popen.wait()
            for pump in process.pumps:
                pump.join(timeout=1)
            self.say(process, f"stopped (code {process.popen.returncode})")

    @staticmethod
    def _signal(process: Process, signum: int) -> None:
        assert process.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signum)

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[None]:
        def stop(*_: Any) -> None:
            self.stopping.set()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def supervise(entries: dict[str, str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    supervisor = Supervisor(entries, env=env, cwd=cwd)
    with supervisor.handling_signals():
        return supervisor.run()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-f", "--procfile", default="Procfile", type=Path)
    args = parser.parse_args(argv)
    return supervise(read_procfile(args.procfile))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
