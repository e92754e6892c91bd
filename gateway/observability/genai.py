"""OpenTelemetry's GenAI metric conventions on /metrics, beside the gateway's own series:
`gen_ai_client_operation_duration_seconds`, `gen_ai_client_token_usage` (by
`gen_ai_token_type`), `gen_ai_server_time_to_first_token_seconds` and
`gen_ai_server_time_per_output_token_seconds` (streams), labelled `gen_ai_operation_name`,
`gen_ai_provider_name` and `gen_ai_request_model` (the same bounded labels as the rest).

Plain tallies in one process, prometheus_client's shared histograms with several workers
(ledger.py's `histograms`).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.api.usage import Usage
from gateway.observability.ledger import histograms

LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)


class GenAIMetrics:
    def __init__(self, latency_buckets: Sequence[float]) -> None:
        self._duration = histograms(
            "gen_ai_client_operation_duration_seconds", "GenAI operation duration",
            LABELS, latency_buckets,
        )  # fmt: skip
        self._tokens = histograms(
            "gen_ai_client_token_usage", "Tokens used per GenAI operation, by token type",
            (*LABELS, "gen_ai_token_type"), TOKEN_BUCKETS,
        )  # fmt: skip
        self._ttft = histograms(
            "gen_ai_server_time_to_first_token_seconds", "Time to the first streamed token",
            LABELS, latency_buckets,
        )  # fmt: skip
        self._tpot = histograms(
            "gen_ai_server_time_per_output_token_seconds",
            "Time per output token after the first", LABELS, TPOT_BUCKETS,
        )  # fmt: skip

    def observe(  # noqa: PLR0913 - one value per label and measurement
        self,
        operation: str,
        provider: str,
        model: str,
        seconds: float,
        first_token: float | None,
        usage: Usage | None,
    ) -> None:
        key = (operation, provider, model)
        self._duration.observe(key, seconds)
        if first_token is not None:
            self._ttft.observe(key, first_token)
        if usage is not None:
            self._tokens.observe((*key, "input"), usage.prompt_tokens)
            if usage.completion_tokens:
                self._tokens.observe((*key, "output"), usage.completion_tokens)
                if first_token is not None and usage.completion_tokens > 1:
                    per = (seconds - first_token) / (usage.completion_tokens - 1)
                    self._tpot.observe(key, per)
