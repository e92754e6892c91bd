"""The access log: one line per request, cheap on the event loop.

`logging` costs a request several microseconds of formatting, a lock and a write(2) per line; at
the gateway's rates that was a third of its throughput. Here a line is one f-string appended to
a batch, and a single thread writes the batch every `interval` seconds (one syscall), so the
loop never waits on a slow log reader. The lines look like the rest of the log's
(`date time,ms INFO gateway.access[pid]: ...`). SIGTERM flushes what is pending; a kill -9 loses
at most the last interval.

Every client-chosen string in a line goes through `escape`, so a newline in a model name cannot
forge a line and a space cannot forge a field.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

_LOGGER = "gateway.access"
_MAX_BATCH = 4096  # lines; a larger backlog is written at once rather than held


def escape(value: str) -> str:
    """A log-safe rendering of a client string: as it is when it is plain printable ASCII with
    no space, quote or backslash; else a JSON string literal with everything else escaped."""
    if value.isascii() and value.isprintable() and not _NEEDS_QUOTES.intersection(value):
        return value
    return json.dumps(value, ensure_ascii=True)


_NEEDS_QUOTES = frozenset(' "\\=')


class _Stamp:
    """`2026-12-02 13:44:01,123 INFO gateway.access[42]: `, the second's part formatted once."""

    __slots__ = ("_prefix", "_second", "_tail")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._tail = f" INFO {_LOGGER}[{os.getpid()}]: "

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._prefix},{int((now - second) * 1000):03d}{self._tail}"


class AccessLog:
    """Batches lines and writes them to a file descriptor (stderr's by default) off the loop."""

    def __init__(self, fd: int | None = None, *, interval: float = 0.05) -> None:
        self._fd = sys.stderr.fileno() if fd is None else fd
        self._interval = interval
        self._lines: list[str] = []
        self._stamp = _Stamp()
        self._flush_at: asyncio.TimerHandle | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="access-log")

    @staticmethod
    def enabled() -> bool:
        """Whether the log level lets access lines through (GATEWAY_LOG_LEVEL=warning: no)."""
        return logging.getLogger(_LOGGER).isEnabledFor(logging.INFO)

    def write(self, message: str) -> None:
        lines = self._lines
        lines.append(self._stamp() + message + "\n")
        if len(lines) >= _MAX_BATCH:
            self._hand_off()
        elif self._flush_at is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on a loop (a tool, a test): write now
                self.flush()
                return
            self._flush_at = loop.call_later(self._interval, self._hand_off)

    def _hand_off(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        if self._lines:
            data = "".join(self._lines).encode("utf-8", "replace")
            self._lines = []
            self._writer.submit(_write_all, self._fd, data)

    def flush(self) -> None:
        """Writes everything pending and waits for it (shutdown)."""
        self._hand_off()
        self._writer.submit(lambda: None).result()

    def close(self) -> None:
        self.flush()
        self._writer.shutdown(wait=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:
            return  # the log's reader is gone; the gateway goes on serving
        view = view[written:]
