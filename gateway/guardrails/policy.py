"""Guardrails as the config names them, compiled once: a detector, each kind's action, the
direction, the mode, and the size and citation rules; and which ones a request falls under."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from gateway.config.errors import ConfigError
from gateway.config.guardrails import GuardrailCfg, GuardrailsCfg
from gateway.errors import GatewayError
from gateway.guardrails.detector import CustomKind, Detector, Finding
from gateway.guardrails.judge import Judge
from gateway.guardrails.kinds import KINDS, SECRETS
from gateway.guardrails.topics import TOPICS, topic_kinds

if TYPE_CHECKING:
    from gateway.config.schema import GatewayCfg
    from gateway.guardrails.report import Report
    from gateway.providers.transport import Transport
    from gateway.routing.catalog import Catalog

HEADER = "x-gateway-guardrails"
MAX_REQUESTED = 8  # guardrails one request may add by name


class Guardrail:
    __slots__ = (
        "block_status",
        "citation_action",
        "detector",
        "input",
        "judge",
        "max_tokens",
        "mode",
        "name",
        "output",
        "over_max_tokens",
        "require_citation",
        "restore",
        "_actions",
        "_default",
    )

    def __init__(
        self,
        name: str,
        cfg: GuardrailCfg,
        direction: str | None = None,
        transport: Transport | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.name = name
        self.judge = Judge(cfg.judge, transport, catalog) if cfg.judge and transport else None
        if cfg.judge is not None and cfg.judge.route is not None and catalog is not None:
            try:
                catalog.resolve(cfg.judge.route)
            except GatewayError as err:
                raise ValueError(f"judge.route: {err.message}") from None
        direction = direction or cfg.direction
        self.input = direction in ("input", "both")
        self.output = direction in ("output", "both")
        self.mode = cfg.effective_mode
        kinds: Sequence[str] = (
            cfg.kinds if cfg.kinds is not None else (KINDS if cfg.block_pii else ())
        )
        unknown_actions = set(cfg.actions) - set(kinds) - {p.name for p in cfg.patterns}
        if unknown_actions:
            raise ValueError(
                f"actions: not a kind of this guardrail: {', '.join(sorted(unknown_actions))}"
            )
        custom = [CustomKind(p.name, p.regex, tuple(p.words)) for p in cfg.patterns]
        unknown_topics = [t for t in cfg.block_topics if t not in TOPICS]
        if unknown_topics:
            raise ValueError(
                f"block_topics: unknown topic {unknown_topics[0]!r}"
                f" (known: {', '.join(sorted(TOPICS))})"
            )
        custom.extend(topic_kinds(cfg.block_topics))
        self.detector = Detector(kinds, custom, cfg.allow, cfg.allow_patterns)
        actions: dict[str, str] = {}
        for kind in kinds:
            actions[kind] = cfg.action or ("block" if kind in SECRETS else "mask")
        for p in cfg.patterns:
            actions[p.name] = cfg.action or p.action
        for extra in custom:
            actions.setdefault(extra.name, "block")  # topics
        actions.update(cfg.actions)
        self._actions = actions
        self._default = cfg.action or "block"
        self.max_tokens = cfg.max_tokens
        self.over_max_tokens = cfg.over_max_tokens
        self.require_citation = cfg.require_citation
        self.citation_action = cfg.citation_action
        self.block_status = cfg.block_status
        self.restore = cfg.restore

    @property
    def scans(self) -> bool:
        return bool(self.detector.kinds)

    def action(self, kind: str) -> str:
        return self._actions.get(kind, self._default)

    def decide(  # noqa: PLR0913 - the findings, their text, and where they are
        self,
        findings: Iterable[Finding],
        text: str,
        direction: str,
        report: Report,
        path: str,
        shift: int = 0,
    ) -> tuple[Finding | None, list[Finding]]:
        """Counts each finding (logged at `path:offset`, offsets moved by `shift`); when
        enforcing, the first that blocks stops there and is answered, else the ones to mask."""
        spans: list[Finding] = []
        for f in findings:
            action = self.action(f.kind)
            where = f"{path}:{f.start + shift}"
            report.add(self, f.kind, action, direction, where, text[f.start : f.end])
            if self.mode != "enforce":
                continue
            if action == "block":
                return f, []
            if action == "mask":
                spans.append(f)
        return None, spans


class Guardrails:
    """Every guardrail of the config, and which apply to a request: the global ones, the
    model's, the key's (and its team's), and those the request adds by name; a request can
    never remove one the operator attached."""

    __slots__ = ("by_name", "_global", "_models", "_plans", "window")

    def __init__(
        self,
        cfg: GuardrailsCfg,
        models: Mapping[str, Sequence[str]],
        transport: Transport | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.window = cfg.stream_window
        by_name: dict[str, Guardrail] = {}
        for name, policy in cfg.policies.items():
            by_name[name] = _build(name, policy, None, transport, catalog)
        attached: list[Guardrail] = []
        for name, given in (("input", cfg.input), ("output", cfg.output)):
            if given is not None:
                if name in by_name:
                    raise ValueError(
                        f"guardrails.policies.{name}: the name is taken by guardrails.{name}"
                    )
                by_name[name] = _build(name, given, name, transport, catalog)
                attached.append(by_name[name])
        for i, name in enumerate(cfg.attach):
            attached.append(_named(by_name, name, f"guardrails.attach[{i}]"))
        self.by_name = by_name
        self._global = tuple(_unique(attached))
        self._plans: dict[str | None, Plan] = {}  # per configured model (a bounded set)
        self._models = {
            model: tuple(_named(by_name, n, f"models[{model}].guardrails") for n in names)
            for model, names in models.items()
            if names
        }

    @property
    def active(self) -> bool:
        return bool(self.by_name)

    def check_names(self, names: Iterable[str], where: str) -> None:
        for name in names:
            _named(self.by_name, name, where)

    def plan(self, model: str | None, key_policy: str | None, requested: str | None) -> Plan:
        """The guardrails a request falls under, split by direction (cached per model)."""
        if key_policy is None and not requested:
            found = self._plans.get(model)
            if found is None:
                found = self._plans[model] = _plan(self.applying(model, None, None))
            return found
        return _plan(self.applying(model, key_policy, requested))

    def applying(
        self, model: str | None, key_policy: str | None, requested: str | None
    ) -> tuple[Guardrail, ...]:
        chosen: list[Guardrail] = list(self._global)
        if model is not None:
            chosen.extend(self._models.get(model, ()))
        if key_policy is not None:
            found = self.by_name.get(key_policy)
            if found is not None:
                chosen.append(found)
        if requested:
            for name in requested.split(",")[:MAX_REQUESTED]:
                found = self.by_name.get(name.strip())
                if found is None:
                    raise LookupError(name.strip())
                chosen.append(found)
        if len(chosen) < 2:
            return tuple(g for g in chosen if g.mode != "off")
        return tuple(g for g in _unique(chosen) if g.mode != "off")


class Plan(NamedTuple):
    inputs: tuple[Guardrail, ...]  # guardrails acting on the request (input scans, caps)
    outputs: tuple[Guardrail, ...]  # guardrails reading the answer
    # Every input guardrail only scans: a body none of them finds anything in goes on as it is.
    scan_only: bool
    restore: bool  # an input guardrail puts masked values back into the answer
    judges: tuple[Guardrail, ...]
    answer_judges: tuple[Guardrail, ...] = ()  # judges of whole answers (direction output)


def _plan(active: tuple[Guardrail, ...]) -> Plan:
    inputs = tuple(
        g for g in active if g.input or g.max_tokens is not None or g.require_citation or g.judge
    )
    outputs = tuple(g for g in active if g.output and (g.scans or g.require_citation))
    scan_only = all(
        g.input and g.scans and not g.output and g.max_tokens is None and not g.require_citation
        for g in inputs
    )
    judges = tuple(g for g in inputs if g.judge is not None and g.input)
    answer_judges = tuple(g for g in active if g.judge is not None and g.output)
    restore = any(g.restore for g in inputs)
    return Plan(inputs, outputs, scan_only and not judges, restore, judges, answer_judges)


def build_guardrails(
    cfg: GatewayCfg, transport: Transport | None = None, catalog: Catalog | None = None
) -> Guardrails:
    """The config's guardrails, with the names its models and keys attach checked; errors are
    ConfigErrors naming their path. `serve`, `check-config` and the config dry run share it."""
    try:
        models = {m.name: m.guardrails for m in cfg.models}
        guardrails = Guardrails(cfg.guardrails, models, transport, catalog)
        for key in cfg.governance.keys:
            if key.guardrails is not None:
                guardrails.check_names([key.guardrails], f"governance.keys[{key.id}].guardrails")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return guardrails


def _build(
    name: str,
    cfg: GuardrailCfg,
    direction: str | None,
    transport: Transport | None,
    catalog: Catalog | None,
) -> Guardrail:
    try:
        return Guardrail(name, cfg, direction, transport, catalog)
    except ValueError as err:
        where = f"guardrails.{name}" if direction else f"guardrails.policies.{name}"
        raise ValueError(f"{where}: {err}") from None


def _named(by_name: Mapping[str, Guardrail], name: str, where: str) -> Guardrail:
    found = by_name.get(name)
    if found is None:
        known = ", ".join(sorted(by_name)) or "none"
        raise ValueError(f"{where}: no guardrail named {name!r} (known: {known})")
    return found


def _unique(items: Iterable[Guardrail]) -> list[Guardrail]:
    seen: set[str] = set()
    out: list[Guardrail] = []
    for g in items:
        if g.name not in seen:
            seen.add(g.name)
            out.append(g)
    return out
