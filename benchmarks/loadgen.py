"""An HTTP/1.1 load generator cheap enough to share two cores with the server it measures.

The open-loop runs of the webhook benchmark offer thousands of POSTs a second. A generator written with
asyncio streams and a task per request spent about as much CPU per request as the server, so at 1.5x
the server's capacity it fell seconds behind its own schedule and measured itself. This one uses one
asyncio Protocol per connection on uvloop, no task per request, and a scheduler that sends every due
request on an idle kept-alive connection (or queues it until one frees up or a new one opens, up to
`max_connections`). Each request is timed from its due time (an open loop: a server that falls behind
cannot slow the generator down and hide it) and from when it was written.

A closed loop (capacity) is the same generator with every request due at once and `max_connections`
connections, each sending its next request when the last is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import uvloop


@dataclass
class Outcome:
    """Per request, by index: status (0: no answer), due, written and answered times (perf_counter),
    and the answer's body."""

    status: list[int]
    due: list[float]
    written: list[float]
    answered: list[float]
    body: list[bytes]
    resent: int = 0
    elapsed: float = 0.0
    connections_opened: int = 0

    @classmethod
    def empty(cls, count: int) -> Outcome:
        return cls([0] * count, [0.0] * count, [0.0] * count, [0.0] * count, [b""] * count)


@dataclass(eq=False)
class _Generator:
    port: int
    requests: list[bytes]
    rate: float | None  # None: every request due at once (closed loop)
    max_connections: int
    timeout: float
    outcome: Outcome = field(init=False)
    backlog: deque[int] = field(default_factory=deque)
    idle: list[_Connection] = field(default_factory=list)
    busy: set[_Connection] = field(default_factory=set)
    opening: int = 0
    open: int = 0
    remaining: int = 0
    done: asyncio.Future[None] | None = None

    def __post_init__(self) -> None:
        self.outcome = Outcome.empty(len(self.requests))
        self.remaining = len(self.requests)

    def send(self, index: int, *, retried: bool = False) -> None:
        if self.idle:
            self.idle.pop().start(index, retried=retried)
            return
        if retried:
            self.backlog.appendleft(index)
        else:
            self.backlog.append(index)
        if self.open + self.opening < self.max_connections and self.opening < len(self.backlog):
            self.opening += 1
            asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: _Connection(self), "127.0.0.1", self.port)
        except OSError:
            self.opening -= 1
            if self.backlog and not self.open and not self.opening:
                self.finish(self.backlog.popleft(), 0, b"")  # nothing can carry it
            return
        self.outcome.connections_opened += 1

    def ready(self, connection: _Connection) -> None:
        """A connection is free: it carries the oldest queued request, or waits."""
        if self.backlog:
            connection.start(self.backlog.popleft())
        else:
            self.idle.append(connection)

    def finish(self, index: int, status: int, body: bytes) -> None:
        self.outcome.status[index] = status
        self.outcome.answered[index] = time.perf_counter()
        self.outcome.body[index] = body
        self.remaining -= 1
        if not self.remaining and self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def run(self) -> Outcome:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        started = time.perf_counter()
        due = self.outcome.due
        if self.rate is None:
            for index in range(len(self.requests)):
                due[index] = started
                self.send(index)
        else:
            interval = 1.0 / self.rate
            index = 0
            while index < len(self.requests):
                now = time.perf_counter()
                while index < len(self.requests) and started + index * interval <= now:
                    due[index] = started + index * interval
                    self.send(index)
                    index += 1
                if index < len(self.requests):
                    await asyncio.sleep(max(0.0, started + index * interval - time.perf_counter()))
        watchdog = loop.create_task(self._expire())
        try:
            if self.remaining:
                await self.done
        finally:
            watchdog.cancel()
        self.outcome.elapsed = time.perf_counter() - started
        for connection in self.idle:
            connection.close()
        return self.outcome

    async def _expire(self) -> None:
        """Requests unanswered `timeout` after they were due count as no answer (status 0)."""
        while True:
            await asyncio.sleep(0.25)
            cutoff = time.perf_counter() - self.timeout
            for index in list(self.backlog):
                if self.outcome.due[index] < cutoff:
                    self.backlog.remove(index)
                    self.finish(index, 0, b"")
            for connection in list(self.busy):
                if connection.index is not None and self.outcome.due[connection.index] < cutoff:
                    index, connection.index = connection.index, None
                    self.finish(index, 0, b"")
                    connection.close()


class _Connection(asyncio.Protocol):
    def __init__(self, generator: _Generator) -> None:
        self.generator = generator
        self.transport: asyncio.WriteTransport | None = None
        self.buffer = bytearray()
        self.index: int | None = None
        self.retried = False
        self.used = False  # has carried a request before: the server may have closed it as idle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is not an asyncio subclass
        self.generator.opening -= 1
        self.generator.open += 1
        self.generator.ready(self)

    def start(self, index: int, *, retried: bool = False) -> None:
        assert self.transport is not None
        self.index = index
        self.retried = retried
        self.generator.busy.add(self)
        self.generator.outcome.written[index] = time.perf_counter()
        self.transport.write(self.generator.requests[index])

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.index is None:
            return
        length = 0
        for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        status = int(self.buffer[9:12])
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        index, self.index = self.index, None
        self.used = True
        self.generator.busy.discard(self)
        self.generator.finish(index, status, body)
        self.generator.ready(self)

    def connection_lost(self, exc: Exception | None) -> None:
        generator = self.generator
        generator.open -= 1
        if self in generator.idle:
            generator.idle.remove(self)
        generator.busy.discard(self)
        if self.index is None:
            return
        index, self.index = self.index, None
        if self.used and not self.retried and not self.buffer:
            # A kept-alive connection the server had closed meanwhile (uvicorn closes idle ones after 5 s):
            # as any HTTP client (and Meta's sender) does, send it again once on a new connection, still
            # timed from its due time.
            generator.outcome.resent += 1
            generator.send(index, retried=True)
        else:
            generator.finish(index, 0, b"")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def run(
    port: int,
    requests: list[bytes],
    *,
    rate: float | None,
    max_connections: int,
    timeout: float = 10.0,
) -> Outcome:
    """Offer `requests` at `rate` a second (None: all at once, `max_connections` at a time)."""
    return uvloop.run(_Generator(port, requests, rate, max_connections, timeout).run())
