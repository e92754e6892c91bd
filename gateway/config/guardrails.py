"""Guardrails: the config file's `guardrails:` section (gateway/guardrails builds them).

```
guardrails:
  input:  {block_pii: true, block_topics: [violence, illegal], max_tokens: 4000}
  output: {block_pii: true, require_citation: true, max_tokens: 2000}
  policies:                      # named guardrails, attached here, per model or per key
    pii: {kinds: [email, phone], actions: {phone: block}, allow: [support@acme.com]}
  attach: [pii]                  # named guardrails every request gets
```
`input` and `output` are guardrails named so, attached to every request, in one direction.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

Action = Literal["mask", "block", "flag"]


class _Cfg(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class PatternCfg(_Cfg, frozen=True, kw_only=True):
    """An operator's own kind: a regex (RE2/Hyperscan syntax: no look-around) or whole words."""

    name: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    regex: str | None = None
    words: list[str] = []
    action: Action = "block"

    def __post_init__(self) -> None:
        if (self.regex is None) == (not self.words):
            raise ValueError("give regex or words")


class JudgeCfg(_Cfg, frozen=True, kw_only=True):
    """A remote judge of the request's text (and of whole answers, with direction output or
    both): OpenAI's moderation endpoint (its URL, a key,
    `model: omni-moderation-latest`) or any webhook answering `{"flagged": bool, "categories":
    [...]}` (or the moderation endpoint's own `results`), sent `{"input": text, "model": ...}`;
    or (`route:`) any chat model the gateway serves, asked to answer SAFE or UNSAFE: <category>."""

    url: Annotated[str, Meta(pattern=r"^https?://")] | None = None
    route: str | None = None  # a model name or alias of this gateway
    api_key: str | None = None  # sent as Authorization: Bearer (write it env:VAR)
    headers: dict[str, str] = {}
    model: str | None = None
    categories: list[str] = []  # flagged categories that count; empty: any
    # block: a flagged request is refused, and an unreachable judge refuses too (503);
    # flag: counted and let through, and an unreachable judge lets it through.
    action: Literal["block", "flag"] = "block"
    timeout_ms: Annotated[int, Meta(ge=10, le=60_000)] = 2000

    def __post_init__(self) -> None:
        if (self.url is None) == (self.route is None):
            raise ValueError("give the judge a url or a route")


class GuardrailCfg(_Cfg, frozen=True, kw_only=True):
    # block_pii: every built-in kind, PII masked and secrets blocked (unless `kinds` narrows it).
    block_pii: bool = False
    kinds: list[str] | None = None
    action: Action | None = None  # every kind's action (else: PII mask, secrets block)
    actions: dict[str, Action] = {}  # per kind
    direction: Literal["input", "output", "both"] = "both"
    # shadow: decide, report, never act. YAML reads a bare `off` as false: that is "off" too.
    mode: Literal["off", "shadow", "enforce"] | bool = "enforce"
    allow: list[str] = []  # values never reported (any case)
    allow_patterns: list[str] = []  # regexes a whole value may match to be let through
    patterns: list[PatternCfg] = []
    block_topics: list[str] = []
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    # Output max_tokens above the cap: clamp it to the cap, or refuse the request.
    over_max_tokens: Literal["clamp", "refuse"] = "clamp"
    # Reversible masking: the provider sees placeholders, the caller its own values again.
    restore: bool = False
    require_citation: bool = False
    judge: JudgeCfg | None = None  # on input
    citation_action: Literal["flag", "block"] = "flag"
    block_status: Literal[400, 446] = 400

    def __post_init__(self) -> None:
        if self.mode is True:
            raise ValueError("mode: expected off, shadow or enforce")

    @property
    def effective_mode(self) -> str:
        return "off" if self.mode is False else str(self.mode)


class GuardrailsCfg(_Cfg, frozen=True, kw_only=True):
    input: GuardrailCfg | None = None
    output: GuardrailCfg | None = None
    policies: dict[str, GuardrailCfg] = {}
    attach: list[str] = []
    # Characters of streamed output held back so masking a stream equals masking the whole.
    stream_window: Annotated[int, Meta(ge=96, le=4096)] = 96
