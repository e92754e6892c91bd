"""The access log: one line per request, cheap on the event loop.

`logging` costs a request several microseconds of formatting, a lock and a write(2) per line; at
the gateway's rates that was a third of its throughput. Here the loop appends a request's
fields to a batch, and a single thread formats and writes the batch every `interval` seconds
(one syscall), so the loop never formats a line nor waits on a slow log reader. The lines look
like the rest of the log's (`date time,ms INFO gateway.access[pid]: ...`). SIGTERM flushes what
is pending; a kill -9 loses at most the last interval.

Every client-chosen string in a line goes through `escape`, so a newline in a model name cannot
forge a line and a space cannot forge a field.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import msgspec

from gateway._native.accesslog import Stamp, escape, format_batch

__all__ = ["AccessLog", "RequestLine", "escape"]

_LOGGER = "gateway.access"
_MAX_BATCH = 4096  # lines; a larger backlog is written at once rather than held


# One request's fields, as the loop records them (formatting comes later, on the writer
# thread): (wall-clock time, request id, endpoint, the model as the client asked for it or
# None, provider, status, ms, prompt tokens, completion tokens, stream error). A plain tuple:
# building one is a single bytecode, where a NamedTuple's constructor is a Python call.
RequestLine = tuple[float, str, str, "str | None", str, int, float, int, int, bool]
_Entry = RequestLine | tuple[float, str]  # a request, or (time, a message already made safe)


class AccessLog:
    """Batches lines and writes them to a file descriptor (stderr's by default) off the loop.

    On the loop a request costs one tuple appended to a list; the writer thread formats and
    writes the batch. (Formatting a line on the loop, cold, cost several times what the same
    code costs in a batch: measured in benchmarks/RESULTS.md.)
    """

    def __init__(
        self, fd: int | None = None, *, interval: float = 0.05, json_lines: bool = False
    ) -> None:
        self._fd = sys.stderr.fileno() if fd is None else fd
        self._json = json_lines  # logging.format: json, for log shippers
        self._interval = interval
        self._entries: list[_Entry] = []
        self._stamp = Stamp(_LOGGER)
        self._flush_at: asyncio.TimerHandle | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="access-log")

    @staticmethod
    def enabled() -> bool:
        """Whether the log level lets access lines through (GATEWAY_LOG_LEVEL=warning: no)."""
        return logging.getLogger(_LOGGER).isEnabledFor(logging.INFO)

    def request(self, line: RequestLine) -> None:
        self._add(line)

    def write(self, message: str) -> None:
        """A line of the caller's making; every client string in it must be escaped."""
        self._add((time.time(), message))

    def _add(self, entry: _Entry) -> None:
        entries = self._entries
        entries.append(entry)
        if len(entries) >= _MAX_BATCH:
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
        if self._entries:
            entries, self._entries = self._entries, []
            self._writer.submit(self._write_batch, entries)

    def _write_batch(self, entries: list[_Entry]) -> None:
        data = format_json(entries) if self._json else format_batch(entries, self._stamp)
        _write_all(self._fd, data)

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


_JSON = msgspec.json.Encoder()


def format_json(entries: list[_Entry]) -> bytes:
    """One JSON object a line, with the text lines' fields; every string JSON-escaped, so no
    client string can forge a line or a field."""
    out = bytearray()
    pid = os.getpid()
    for entry in entries:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(entry[0]))
        ts = f"{stamp}.{int((entry[0] % 1) * 1000):03d}Z"
        if len(entry) == 2:
            doc: dict[str, object] = {"ts": ts, "logger": _LOGGER, "pid": pid, "message": entry[1]}
        else:
            at, rid, endpoint, model, provider, status, ms, prompt, completion, failed = entry
            doc = {
                "ts": ts, "logger": _LOGGER, "pid": pid, "request_id": rid, "endpoint": endpoint,
                "model": model, "provider": provider, "status": status, "ms": round(ms, 1),
                "prompt_tokens": prompt, "completion_tokens": completion, "stream_error": failed,
            }  # fmt: skip
        out += _JSON.encode(doc)
        out += b"\n"
    return bytes(out)
