"""Runs N worker processes on one port (SO_REUSEPORT), restarting any that die unexpectedly;
workers whose parent dies (kill -9 of the instance's main process) drain and exit too, so a
crashed instance never leaves orphans serving its port."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

LOG = logging.getLogger("gateway.workers")
_CRASH_WINDOW = 10.0  # seconds; more crashes than workers inside it means give up
_SpawnProcess = multiprocessing.context.SpawnProcess
_PARENT = "GATEWAY_WORKERS_PARENT"
_PR_SET_PDEATHSIG = 1


def follow_parent() -> None:
    """In a worker: SIGTERM (a drain) when the process that started it dies. Linux's
    PR_SET_PDEATHSIG; elsewhere a worker outlives its parent as before."""
    expected = os.environ.get(_PARENT)
    if not expected:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if str(os.getppid()) != expected:  # the parent died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


def run_workers(count: int, target: Callable[[], None]) -> int:
    context = multiprocessing.get_context("spawn")
    workers: list[_SpawnProcess] = []
    crashes: list[float] = []
    stopping = False

    def start() -> _SpawnProcess:
        process = context.Process(target=target, daemon=False)
        process.start()
        return process

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.is_alive() and process.pid is not None:
                process.terminate()  # SIGTERM: each worker drains on its own

    def on_reload(signum: int, frame: FrameType | None) -> None:
        for process in workers:  # each worker reads the config again (server/reload.py)
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)

    os.environ[_PARENT] = str(os.getpid())  # the spawned workers inherit it
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_reload)
    workers.extend(start() for _ in range(count))
    while workers:
        multiprocessing.connection.wait([p.sentinel for p in workers], timeout=1.0)
        for process in [p for p in workers if not p.is_alive()]:
            workers.remove(process)
            _mark_dead(process.pid)
            if stopping:
                continue
            LOG.error("worker %s exited with code %s; restarting", process.pid, process.exitcode)
            now = time.monotonic()
            crashes[:] = [t for t in crashes if now - t < _CRASH_WINDOW] + [now]
            if len(crashes) > count:
                LOG.critical("workers keep crashing; shutting down")
                on_signal(signal.SIGTERM, None)
                continue
            workers.append(start())
    return 0 if stopping else 1


def _mark_dead(pid: int | None) -> None:
    if pid is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
