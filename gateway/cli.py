"""Command line: `gateway serve` and `gateway check-config`."""

from __future__ import annotations

import argparse
import functools
import ipaddress
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway import __version__
from gateway.config import ConfigError, GatewayCfg, load_config
from gateway.config.schema import ServerCfg, replace
from gateway.config.zeroconf import missing_keys_hint, zero_config
from gateway.observability.logging import setup as setup_logging

LOG = logging.getLogger("gateway")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    config: str | None
    host: str | None
    port: int | None
    workers: int | None
    allow_unauthenticated: bool
    log_level: str
    watch: bool = False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible AI gateway")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", default=os.environ.get("GATEWAY_CONFIG"), help="YAML file")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT)")
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="allow binding a non-loopback address without a master key",
    )
    serve.add_argument("--log-level", default=os.environ.get("GATEWAY_LOG_LEVEL", "info"))
    serve.add_argument(
        "--watch", action="store_true", help="reload the config file when it changes (as SIGHUP)"
    )
    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")
    usage = commands.add_parser("usage", help="the usage ledger")
    usage_commands = usage.add_subparsers(dest="usage_command", required=True)
    reprice = usage_commands.add_parser(
        "reprice", help="price rows recorded unpriced, at today's catalog and config prices"
    )
    reprice.add_argument("--config", default=os.environ.get("GATEWAY_CONFIG"), help="YAML file")
    reprice.add_argument("--since", help="unix seconds or ISO 8601 (default: all raw rows)")
    migrate = commands.add_parser(
        "migrate", help="create or migrate the store's tables (serve does it too) and exit"
    )
    migrate.add_argument("--config", default=os.environ.get("GATEWAY_CONFIG"), help="YAML file")
    keys = commands.add_parser("keys", help="virtual keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser(
        "hash", help="read a key's secret on stdin; print what `governance.keys[].key_hash` takes"
    )
    keys_commands.add_parser("new", help="print a new secret and its hash, for the config file")
    guard = commands.add_parser("guardrails", help="guardrails")
    guard_commands = guard.add_subparsers(dest="guardrails_command", required=True)
    check_text = guard_commands.add_parser(
        "check", help="scan a text file (- for stdin) with a guardrail; print the verdict as JSON"
    )
    check_text.add_argument("file")
    check_text.add_argument("--config", default=os.environ.get("GATEWAY_CONFIG"), help="YAML file")
    check_text.add_argument("--guardrail", help="a guardrail's name (default: every built-in kind)")
    return parser


def _keys(command: str) -> int:
    from gateway.governance.records import hash_secret, new_secret

    if command == "new":
        secret = new_secret()
        print(f"secret: {secret}\nkey_hash: {hash_secret(secret)}")
        return 0
    secret = sys.stdin.readline().strip()
    if not secret:
        print("gateway: give the secret on stdin (never as an argument: it would show in ps)",
              file=sys.stderr)  # fmt: skip
        return 2
    print(hash_secret(secret))
    return 0


def load_settings(options: ServeOptions, env: Mapping[str, str]) -> GatewayCfg:
    if options.config:
        cfg = load_config(options.config, env)
    else:
        cfg = zero_config(env)
        if env.get("GATEWAY_MASTER_KEY"):
            server = replace(cfg.server, master_key=env["GATEWAY_MASTER_KEY"])
            cfg = replace(cfg, server=server)
    overrides: dict[str, object] = {}
    if options.host is not None:
        overrides["host"] = options.host
    if options.port is not None:
        overrides["port"] = options.port
    if options.workers is not None:
        if options.workers < 1:
            raise ConfigError("--workers: expected at least 1")
        overrides["workers"] = options.workers
    if options.allow_unauthenticated:
        overrides["allow_unauthenticated"] = True
    if overrides:
        cfg = replace(cfg, server=replace(cfg.server, **overrides))
    _check_exposure(cfg.server)
    from gateway.server.tls import tls_context

    tls_context(cfg.server)  # a bad certificate fails here, before any worker starts
    return cfg


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_exposure(server: ServerCfg) -> None:
    if server.master_key or server.allow_unauthenticated or _is_loopback(server.host):
        return
    raise ConfigError(
        f"refusing to serve {server.host} without a master key: set server.master_key "
        "(or GATEWAY_MASTER_KEY), or pass --allow-unauthenticated"
    )


def _announce(cfg: GatewayCfg, env: Mapping[str, str]) -> None:
    server = cfg.server
    providers = ", ".join(cfg.providers) or "none"
    print(
        f"gateway {__version__}: {'https' if server.tls_cert_file else 'http'}://"
        f"{server.host}:{server.port}/v1 "
        f"({server.workers} worker{'s' if server.workers > 1 else ''}); providers: {providers}",
        file=sys.stderr,
    )
    hosted = [name for name in cfg.providers if name not in ("ollama", "vllm")]
    if not cfg.models and not hosted:
        print(f"no provider API keys found: {missing_keys_hint(env)}", file=sys.stderr)


def _worker(options: ServeOptions) -> None:
    """One serving process (also the body of each worker when --workers > 1)."""
    from gateway.server.app import build_app, serve
    from gateway.server.reload import Reloader

    setup_logging(options.log_level)
    cfg = load_settings(options, os.environ)
    fleet = cfg.server.workers > 1
    if fleet:
        from gateway.server.workers import follow_parent

        follow_parent()
    gateway = build_app(cfg, os.environ)
    reloader = (
        Reloader(
            functools.partial(load_settings, options, os.environ),
            os.environ,
            watch=options.config if options.watch else None,
            grace=cfg.server.shutdown_timeout,
            fleet=fleet,
        )  # fmt: skip
        if options.config
        else None
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        import asyncio

        asyncio.run(serve(gateway, reuse_port=fleet, reloader=reloader))
    else:
        uvloop.run(serve(gateway, reuse_port=fleet, reloader=reloader))


def _serve(options: ServeOptions) -> int:
    setup_logging(options.log_level)
    cfg = load_settings(options, os.environ)
    if cfg.server.workers > 1:
        # Metrics of all workers are aggregated through files; the variable must be set before
        # prometheus_client is imported anywhere, which is why the app is not imported yet.
        os.environ.setdefault(
            "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="gateway-metrics-")
        )
    from gateway.routing.catalog import build_catalog
    from gateway.routing.health import HealthRegistry

    build_catalog(cfg, os.environ, HealthRegistry())  # fail fast, before any worker starts
    _announce(cfg, os.environ)
    if cfg.server.workers == 1:
        _worker(options)
        return 0
    from gateway.server.workers import run_workers

    return run_workers(cfg.server.workers, functools.partial(_worker, options))


def _check(path: str) -> int:
    from gateway.guardrails.policy import build_guardrails
    from gateway.routing.catalog import build_catalog
    from gateway.routing.health import HealthRegistry

    cfg = load_config(path)
    catalog = build_catalog(cfg, os.environ, HealthRegistry())
    build_guardrails(cfg, None, catalog)  # a judge's route must be a model this config serves
    print(f"{path}: ok ({len(cfg.providers)} providers, {len(cfg.models)} models)")
    return 0


def _guardrails_check(file: str, config: str | None, name: str | None) -> int:
    import json

    from gateway.guardrails.check import check_text, pick
    from gateway.guardrails.policy import build_guardrails

    guardrails = build_guardrails(load_config(config, os.environ)) if config else None
    try:
        guardrail = pick(guardrails, name)
    except LookupError:
        print(f"gateway: no guardrail named {name!r}", file=sys.stderr)
        return 2
    text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()  # noqa: SIM115
    result = check_text(guardrail, text)
    print(json.dumps(result, indent=2))
    return 1 if result["verdict"] == "block" else 0


def _reprice(config: str | None, since: str | None) -> int:
    """`gateway usage reprice`: the same pricing and store as `serve` with this config."""
    import asyncio

    from gateway.metering.query import parse_time
    from gateway.routing.health import HealthRegistry
    from gateway.server.app import build_metering

    cfg = load_config(config, os.environ) if config else zero_config(os.environ)
    metering = build_metering(cfg, os.environ, HealthRegistry())
    start = parse_time(since, "since") if since else 0.0

    async def run() -> int:
        assert metering.meter is not None
        await metering.meter.store.open()
        try:
            return await metering.reprice(start)
        finally:
            await metering.meter.store.close()

    print(f"repriced {asyncio.run(run())} rows")
    return 0


def _migrate(config: str | None) -> int:
    """`gateway migrate`: every table `serve` keeps in the ledger's database, created or
    migrated (versioned, idempotent, safe beside instances starting at the same moment)."""
    import asyncio

    from gateway.store import open_store, store_url
    from gateway.store.base import StoreError
    from gateway.store.feedback import open_feedback_store
    from gateway.store.keys import open_key_store
    from gateway.store.responses import open_response_store
    from gateway.store.shadow import open_shadow_store

    cfg = load_config(config, os.environ) if config else zero_config(os.environ)
    url = store_url(cfg.usage.store, os.environ)
    ledger = open_store(url, os.environ)
    opens = (open_key_store, open_response_store, open_feedback_store, open_shadow_store)
    stores = [ledger, *(open_(url, os.environ) for open_ in opens)]

    async def run() -> None:
        for store in stores:
            try:
                await store.open()
            finally:
                await store.close()

    try:
        asyncio.run(run())
    except StoreError as err:
        print(f"gateway: migrate: {err}", file=sys.stderr)
        return 1
    print(f"{ledger.description}: schema version {ledger.schema_version}; ledger, keys, stored"
          " responses, feedback and shadow comparisons ready")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return _check(args.file)
        if args.command == "usage":
            return _reprice(args.config, args.since)
        if args.command == "keys":
            return _keys(args.keys_command)
        if args.command == "migrate":
            return _migrate(args.config)
        if args.command == "guardrails":
            return _guardrails_check(args.file, args.config, args.guardrail)
        options = ServeOptions(
            config=args.config,
            host=args.host,
            port=args.port,
            workers=args.workers,
            allow_unauthenticated=args.allow_unauthenticated,
            log_level=args.log_level,
            watch=args.watch,
        )
        return _serve(options)
    except ConfigError as err:
        print(f"gateway: config error: {err}", file=sys.stderr)
        return 2
