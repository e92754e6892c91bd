"""OpenTelemetry traces, received by an OTLP/HTTP collector the test runs (its protobuf
decoded with opentelemetry-proto): a fallback's attempts as children of the request's span in
the client's trace, the GenAI attributes, the cache lookup, the provider sent the attempt's
span as its parent, sampling, and an unreachable collector costing requests nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx2 as httpx
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, until, write_config
from tests.mock_openai import MockOpenAI
from tests.mock_server import ThreadedServer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
CONFIG = """
server: {{master_key: env:TEST_MASTER_KEY}}
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{mock}/v1"}}
cache: {{mode: simple}}
models:
  - name: resilient
    strategy: {{mode: fallback}}
    targets:
      - {{provider: openai, model: status-503}}
      - {{provider: openai, model: gpt-4o-mini}}
tracing:
  enabled: true
  endpoint: "{collector}/v1/traces"
  sample_ratio: {ratio}
  export_interval: 0.2
  service_name: test-gateway
"""


class Collector(ThreadedServer):
    def __init__(self) -> None:
        super().__init__()
        self.exports: list[ExportTraceServiceRequest] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/traces", self.traces)

    async def traces(self, request: web.Request) -> web.Response:
        assert request.headers["content-type"] == "application/x-protobuf"
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        with self.state.lock:
            self.exports.append(export)
        return web.Response(body=b"", content_type="application/x-protobuf")

    def spans(self) -> list[tuple[Any, Any]]:
        """(resource, span) for every span received."""
        with self.state.lock:
            return [(rs.resource, span) for e in self.exports for rs in e.resource_spans
                    for ss in rs.scope_spans for span in ss.spans]  # fmt: skip


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out




def start(impl: str, mock: MockOpenAI, collector: str, ratio: float = 1.0) -> Gateway:
    config = write_config(CONFIG.format(mock=mock.url, collector=collector, ratio=ratio))
    return start_gateway(
        impl, ["--config", str(config)],
        {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY},
    )  # fmt: skip


def chat(gw: Gateway, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{gw.v1}/chat/completions", timeout=30,
        headers={"authorization": f"Bearer {MASTER_KEY}", **(headers or {})},
        json={"model": "resilient", "messages": [{"role": "user", "content": text}]},
    )  # fmt: skip


def test_a_fallback_traced_in_the_clients_trace(impl: str, mock: MockOpenAI) -> None:
    collector = Collector().start()
    gw = start(impl, mock, collector.url)
    try:
        reply = chat(gw, "trace me", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert reply.status_code == 200 and reply.headers["x-gateway-attempts"] == "2"
        until(lambda: len(collector.spans()) >= 4)
        resource, _ = collector.spans()[0]
        assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "test-gateway"
        spans = [s for _, s in collector.spans()]
        assert {s.trace_id.hex() for s in spans} == {TRACE_ID}
        (root,) = [s for s in spans if s.parent_span_id.hex() == PARENT_ID]
        assert root.name == "chat resilient" and root.kind == root.SPAN_KIND_SERVER
        attrs = attributes(root)
        assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "resilient"
        assert attrs["gen_ai.provider.name"] == "openai" and attrs["gen_ai.response.model"] == "gpt-4o-mini"
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
        assert attrs["http.response.status_code"] == 200 and attrs["gateway.attempts"] == 2
        assert [v.string_value for v in attrs["gen_ai.response.finish_reasons"].values] == ["stop"]
        children = sorted((s for s in spans if s.parent_span_id == root.span_id), key=lambda s: s.start_time_unix_nano)
        assert [s.name for s in children] == ["cache lookup", "chat status-503", "chat gpt-4o-mini"]
        cache, failed, served = children
        assert attributes(cache)["gateway.cache.result"] == "miss"
        assert failed.kind == failed.SPAN_KIND_CLIENT and failed.status.code == failed.status.STATUS_CODE_ERROR
        assert attributes(failed)["http.response.status_code"] == 503 and attributes(failed)["gateway.fallback_path"] == "0"
        assert attributes(served)["http.response.status_code"] == 200 and attributes(served)["gateway.fallback_path"] == "1"
        assert root.start_time_unix_nano <= failed.start_time_unix_nano < served.start_time_unix_nano <= root.end_time_unix_nano
        # The provider was told the attempt's span is its parent, in the same trace.
        sent = [r for r in mock.state.requests if r.body.get("model") == "gpt-4o-mini"][-1]
        assert sent.headers["traceparent"] == f"00-{TRACE_ID}-{served.span_id.hex()}-01"
        # A client's unsampled parent is honoured: no trace; a new trace otherwise.
        before = len(collector.spans())
        chat(gw, "not sampled", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
        chat(gw, "no parent")
        until(lambda: len(collector.spans()) >= before + 4)
        time.sleep(0.5)
        later = [s for _, s in collector.spans()[before:]]
        assert len(later) == 4 and all(s.trace_id.hex() != TRACE_ID for s in later)
        assert 'gateway_traces_total{result="exported"}' in httpx.get(f"{gw.url}/metrics").text
    finally:
        gw.stop()
        collector.stop()


def test_sampling_and_an_unreachable_collector(impl: str, mock: MockOpenAI) -> None:
    collector = Collector().start()
    gw = start(impl, mock, collector.url, ratio=0.0)
    try:
        for n in range(5):
            assert chat(gw, f"unsampled {n}").status_code == 200
        time.sleep(0.6)
        assert collector.spans() == []
    finally:
        gw.stop()
        collector.stop()
    gw = start(impl, mock, "http://127.0.0.1:9")  # nothing listens there
    try:
        started = time.monotonic()
        for n in range(20):
            assert chat(gw, f"lost {n}").status_code == 200
        assert time.monotonic() - started < 5
        until(lambda: 'gateway_traces_total{result="failed"}' in httpx.get(f"{gw.url}/metrics").text)
    finally:
        assert gw.stop() == 0


class _RawCollector:
    """An OTLP/HTTP receiver on a raw socket that counts connections and requests; with
    `silent_close` it drops each connection after answering, as a collector's idle timeout
    does, without saying `connection: close`."""

    def __init__(self, silent_close: bool = False) -> None:
        import socket
        import threading

        self.silent_close = silent_close
        self.connections = 0
        self.requests = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: Any) -> None:
        file = sock.makefile("rb")
        with sock, file:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = file.readline()
                    if not line:
                        return
                    head += line
                length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n")
                              if h.lower().startswith(b"content-length"))  # fmt: skip
                file.read(length)
                self.requests += 1
                sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                if self.silent_close:
                    return

    def close(self) -> None:
        self._server.close()


def _export(collector: _RawCollector, batches: int) -> None:
    from gateway.config.schema import TracingCfg
    from gateway.tracing.export import Exporter
    from gateway.tracing.spans import SERVER, Span, Trace

    exporter = Exporter(TracingCfg(
        enabled=True, endpoint=f"http://127.0.0.1:{collector.port}/v1/traces", batch_size=1,
        export_interval=0.05,
    ))  # fmt: skip
    exporter.start()
    try:
        for n in range(batches):
            trace = Trace(bytes(range(1, 17)), None, time.perf_counter())
            exporter.submit(trace, Span("chat", trace.root_id, None, SERVER, 1, 2, {"n": n}))
            until(lambda n=n: collector.requests == n + 1)
    finally:
        exporter.stop()


def test_the_exporter_keeps_its_connection_and_reopens_one_the_collector_closed() -> None:
    """Batches share one kept-alive connection (a connection per batch cost more than the
    encoding); a connection the collector dropped while idle is opened again for the same
    batch, which is not lost."""
    kept = _RawCollector()
    try:
        _export(kept, 5)
        assert (kept.connections, kept.requests) == (1, 5)
    finally:
        kept.close()
    dropping = _RawCollector(silent_close=True)
    try:
        _export(dropping, 4)
        assert dropping.requests == 4
    finally:
        dropping.close()
