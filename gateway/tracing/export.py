"""The OTLP/HTTP exporter: one thread that takes finished traces from a bounded queue, encodes
them as OTLP protobuf (otlp.py) and POSTs batches to the collector. The event loop only
appends to the queue: a slow or unreachable collector costs
requests nothing; past `max_queue` traces are dropped and counted."""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
from collections import deque
from urllib.parse import urlsplit

from gateway import __version__
from gateway._native.otlp import export_request
from gateway.config.schema import TracingCfg
from gateway.observability import metrics
from gateway.tracing.spans import Span, Trace

LOG = logging.getLogger("gateway.tracing")


class Exporter:
    def __init__(self, cfg: TracingCfg) -> None:
        self._cfg = cfg
        self._resource = {"service.name": cfg.service_name, "service.version": __version__}
        self._queue: deque[tuple[Trace, Span]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        url = urlsplit(cfg.endpoint)
        self._host = url.hostname or "?"
        self._port = url.port
        self._tls = url.scheme == "https"
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._headers = {**cfg.headers, "content-type": "application/x-protobuf"}
        self._connection: http.client.HTTPConnection | None = None
        self._warned = False

    def submit(self, trace: Trace, root: Span) -> None:
        """From the event loop: never blocks."""
        if len(self._queue) >= self._cfg.max_queue:
            metrics.TRACES.labels("dropped").inc()
            return
        self._queue.append((trace, root))
        if len(self._queue) >= self._cfg.batch_size:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Sends what is queued (one last batch at most), then ends the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self._cfg.timeout + 1)
        self._close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._cfg.export_interval)
            self._wake.clear()
            while self._queue:
                batch: list[tuple[Trace, Span]] = []
                while self._queue and len(batch) < self._cfg.batch_size:
                    batch.append(self._queue.popleft())
                self._send(batch)
            if self._stopping:
                return

    def _send(self, batch: list[tuple[Trace, Span]]) -> None:
        body = self.encode(batch)
        try:
            status = self._post(body)
            if status >= 300:
                raise http.client.HTTPException(f"HTTP {status}")
            metrics.TRACES.labels("exported").inc(len(batch))
            self._warned = False
        except (OSError, http.client.HTTPException, ValueError) as err:
            self._close()
            metrics.TRACES.labels("failed").inc(len(batch))
            if not self._warned:  # once per outage, not once per batch
                self._warned = True
                LOG.warning("traces not exported to %s: %s", self._host, type(err).__name__)

    def _post(self, body: bytes) -> int:
        """One POST on the kept-alive connection (a connection per batch cost the exporter's
        thread more than encoding the batch). A connection the collector closed while idle is
        opened again once, for the same batch."""
        for retry in (False, True):
            fresh = self._connection is None
            connection = self._connection or self._open()
            try:
                connection.request("POST", self._path, body, self._headers)
                answer = connection.getresponse()
                answer.read()
            except (ConnectionError, http.client.BadStatusLine):
                self._close()
                if fresh or retry:
                    raise
                continue
            if answer.will_close:
                self._close()
            return answer.status
        raise AssertionError("unreachable")

    def _open(self) -> http.client.HTTPConnection:
        timeout = self._cfg.timeout
        if self._tls:
            context = ssl.create_default_context()
            self._connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=context
            )
        else:
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def encode(self, batch: list[tuple[Trace, Span]]) -> bytes:
        return export_request(batch, self._resource, ("gateway", __version__))
