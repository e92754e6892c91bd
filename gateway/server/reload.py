"""Config hot reload: SIGHUP, `POST /admin/config/reload`, or a watched file.

The new config is read and built completely (build_app, carrying over every long-lived part
whose own config is unchanged), started, then swapped in for new requests in one assignment
of the server's handler. Requests and streams already running finish on the gateway they
started on, whose parts that the new one does not share are stopped `grace` seconds later. A
config that does not load or build leaves the running one untouched, and says why. With
several workers, the worker that was asked signals the parent, which signals every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.config.errors import ConfigError
from gateway.config.schema import GatewayCfg
from gateway.guardrails.policy import build_guardrails
from gateway.observability import metrics
from gateway.server.app import Gateway, build_app
from gateway.server.config_admin import changes
from gateway.server.http import HttpServer

LOG = logging.getLogger("gateway.reload")
WATCH_INTERVAL = 1.0  # seconds between looks at the watched file


class Reloader:
    def __init__(
        self,
        load: Callable[[], GatewayCfg],
        env: Mapping[str, str],
        *,
        watch: str | None = None,
        grace: float = 30.0,
        fleet: bool = False,
    ) -> None:
        self._load = load  # reads the config file again, with the command line's overrides
        self._env = env
        self._watch_path = Path(watch) if watch else None
        self._grace = grace
        self._fleet = fleet  # a worker of several: tell the parent, which tells them all
        self._lock = asyncio.Lock()
        self._server: HttpServer | None = None
        self._gateway: Gateway | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self.generation = 0

    def attach(self, server: HttpServer, gateway: Gateway) -> None:
        self._server = server
        self._adopt(gateway)
        if self._watch_path is not None:
            self._watcher = asyncio.create_task(self._watch(), name="config-watch")

    def _adopt(self, gateway: Gateway) -> None:
        self._gateway = gateway
        gateway.config_admin.reloader = self.requested

    def on_signal(self) -> None:
        asyncio.get_running_loop().create_task(self._quiet("SIGHUP"))

    async def _quiet(self, why: str) -> None:
        try:
            await self.reload(why)
        except ConfigError as err:
            LOG.error("config reload (%s) failed; the running config is kept: %s", why, err)

    async def requested(self) -> dict[str, Any]:
        """POST /admin/config/reload: this process now, then (with workers) every other."""
        answer = await self.reload("admin API")
        if self._fleet:
            os.kill(os.getppid(), signal.SIGHUP)
            answer["workers"] = "signalled"
        return answer

    async def reload(self, why: str) -> dict[str, Any]:
        """Reads, builds and swaps in the config file's current content; raises ConfigError
        (the running gateway untouched) when it does not load or build."""
        try:
            answer = await self._reload(why)
        except ConfigError:
            metrics.CONFIG_RELOADS.labels("failed").inc()
            raise
        metrics.CONFIG_RELOADS.labels("applied" if answer["reloaded"] else "unchanged").inc()
        metrics.CONFIG_GENERATION.set(self.generation)
        return answer

    async def _reload(self, why: str) -> dict[str, Any]:
        async with self._lock:
            old, server = self._gateway, self._server
            assert old is not None and server is not None
            try:
                cfg = self._load()
                diff = changes(old.parts.cfg, cfg)
                if cfg == old.parts.cfg:
                    return {"reloaded": False, "generation": self.generation, "changes": diff}
                # Compiling the guardrails' patterns is the slow part of a build: done in a
                # thread (Hyperscan lets go of the GIL), it leaves build_app only cache hits.
                await asyncio.to_thread(_compile_guardrails, cfg)
                new = build_app(cfg, self._env, previous=old)
            except ConfigError:
                raise
            except Exception as err:  # a part that would not build
                LOG.exception("config reload (%s): the new config could not be built", why)
                raise ConfigError(f"the new config could not be built: {err}") from None
            try:
                await new.start(running=old.kept_parts())
            except Exception as err:  # a part that would not start: undo what did
                LOG.exception("config reload (%s): the new config could not start", why)
                await new.stop(keep=old.kept_parts())
                raise ConfigError(f"the new config could not start: {err}") from None
            settings = cfg.server
            server.handler = new.router.dispatch  # new requests: the new gateway, from here
            server.max_body_bytes = settings.max_body_bytes
            server.keepalive_timeout = settings.keepalive_timeout
            server.read_timeout = settings.read_timeout
            self._adopt(new)
            self.generation += 1
            task = asyncio.create_task(self._retire(old, new), name="config-retire")
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            LOG.info(
                "config reloaded (%s, generation %d)%s", why, self.generation,
                f"; needs a restart to apply: {', '.join(diff['needs_restart'])}"
                if diff["needs_restart"] else "",
            )  # fmt: skip
            return {"reloaded": True, "generation": self.generation, "changes": diff}

    async def _retire(self, old: Gateway, new: Gateway) -> None:
        """Stops what only the old gateway used, once its requests have had time to end."""
        try:
            await asyncio.sleep(self._grace)
        finally:
            await old.stop(keep=new.kept_parts())

    async def _watch(self) -> None:
        path = self._watch_path
        assert path is not None
        seen = _stamp(path)
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = _stamp(path)
            if now != seen:
                seen = now
                await self._quiet("file changed")

    async def detach(self) -> Gateway:
        """At shutdown, before draining: no more reloads. Returns the gateway in service."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        async with self._lock:  # a reload under way finishes first
            assert self._gateway is not None
            return self._gateway

    async def retire_all(self) -> None:
        """After draining: what earlier gateways still held is stopped now, not after grace."""
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _compile_guardrails(cfg: GatewayCfg) -> None:
    with contextlib.suppress(Exception):  # build_app reports what does not build
        build_guardrails(cfg, None, None)


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size
