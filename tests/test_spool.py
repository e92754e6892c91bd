"""The usage spool: rows a process recorded but never wrote (kill -9, or a stop while the
store was down) are written by the next process on the same data directory, exactly once,
against SQLite and PostgreSQL; the end-to-end kill -9 is in test_metering.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.metering.meter import Meter
from gateway.metering.row import UsageRow
from gateway.metering.spool import Spool, spool_dir
from gateway.store import open_store
from gateway.store.base import RowQuery, StoreError, Totals
from tests.test_stores import opened, row


async def _count(url: str) -> tuple[int, int, list[str]]:
    """Raw rows, the rollups' request count, and the raw rows' request ids."""
    ledger = await opened(url)
    try:
        found = await ledger.rows(RowQuery(0, time.time() + 60, {}, 10_000))
        totals = await ledger.totals(Totals(0, int(time.time()) + 120, (), {}))
    finally:
        await ledger.close()
    return len(found), ((totals[0]["requests"] or 0) if totals else 0), sorted(r.request_id for _, r in found)


def _meter(url: str, directory: Path, **options: object) -> Meter:
    return Meter(open_store(url, {}), flush_interval=0.05, spool=Spool(directory), **options)  # type: ignore[arg-type]


def test_a_killed_process_rows_are_written_by_the_next(store: str, tmp_path: Path) -> None:
    """A child process records rows and is killed with SIGKILL before it flushes; a meter
    started later on the same directory writes them, once each (rollups included)."""
    child = (
        "import asyncio, os, signal, sys, time\n"
        "from pathlib import Path\n"
        "from gateway.metering.meter import Meter\n"
        "from gateway.metering.spool import Spool\n"
        "from gateway.store import open_store\n"
        "from tests.test_stores import row\n"
        "async def main():\n"
        "    meter = Meter(open_store(sys.argv[1], {}), flush_interval=60, spool=Spool(Path(sys.argv[2])))\n"
        "    await meter.start()\n"
        "    for i in range(50):\n"
        "        meter.record(row(time.time(), i), 'm')\n"
        "    await asyncio.sleep(0)\n"  # the tick ends (a kill inside it loses that tick's rows)
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", child, store, str(tmp_path)], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == -9, done.stderr

    async def run() -> None:
        assert (await _count(store))[0] == 0  # nothing reached the store before the kill
        meter = _meter(store, tmp_path)
        await meter.start()
        await meter.flush(force=True)
        await meter.stop()
        raw, requests, ids = await _count(store)
        assert (raw, requests) == (50, 50)
        assert ids == sorted(f"r{i}" for i in range(50))
        assert sorted(p.suffix for p in tmp_path.iterdir()) == []  # a clean stop leaves nothing

    asyncio.run(run())


def test_rows_a_store_outage_kept_survive_a_stop(tmp_path: Path) -> None:
    """The store refuses every write until the stop: the rows stay spooled, and the next
    process (the store back) writes them."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    directory = tmp_path / "spool"

    async def run() -> None:
        down = _meter(url, directory)

        async def refuse(rows: list[UsageRow], *, replayed: bool = False) -> None:
            raise StoreError("database is down")

        down.store.write = refuse  # type: ignore[method-assign]
        await down.start()
        for i in range(20):
            down.record(row(time.time(), i), "m")
        await down.stop(timeout=0.3)
        assert down.queued == 20
        assert any(p.suffix == ".rows" and p.stat().st_size for p in directory.iterdir())
        assert (await _count(url))[:2] == (0, 0)
        back = _meter(url, directory)
        await back.start()
        await back.stop()
        assert (await _count(url))[:2] == (20, 20)

    asyncio.run(run())


def test_rows_already_written_are_not_written_twice(store: str, tmp_path: Path) -> None:
    """A process killed after its batch was committed but before its spool file went: the
    next process replays the file, and the store drops the rows it holds."""

    async def run() -> None:
        first = _meter(store, tmp_path)
        await first.start()
        for i in range(30):
            first.record(row(time.time(), i), "m")
        # The rows are written, but the spool keeps its file, as a kill between the two would.
        first._spool.committed = lambda generation: None  # type: ignore[union-attr,method-assign]
        await first.flush(force=True)
        assert (await _count(store))[:2] == (30, 30)
        first._spool._close_fds()  # type: ignore[union-attr]  # as its death would: the lock is free
        first._task.cancel()  # type: ignore[union-attr]
        await first.store.close()
        second = _meter(store, tmp_path)
        await second.start()
        await second.stop()
        assert (await _count(store))[:2] == (30, 30), "replayed rows were written twice"

    asyncio.run(run())


def test_two_adopters_never_take_the_same_file(tmp_path: Path) -> None:
    dead = Spool(tmp_path)
    dead.open()
    for i in range(10):
        dead.append(row(1.7e9 + i, i))
    dead.seal()
    for i in range(10, 15):
        dead.append(row(1.7e9 + i, i))
    dead._close_fds()
    first, second = Spool(tmp_path), Spool(tmp_path)
    first.open()
    second.open()
    taken = first.adopt() + second.adopt()
    assert sorted(r.request_id for r in taken) == sorted(f"r{i}" for i in range(15))
    # If the adopter dies before writing them, the next one finds them under its name.
    first._close_fds()
    assert sorted(r.request_id for r in second.adopt()) == sorted(f"r{i}" for i in range(15))


def test_a_half_written_last_record_is_dropped(tmp_path: Path) -> None:
    dead = Spool(tmp_path)
    dead.open()
    for i in range(3):
        dead.append(row(1.7e9 + i, i))
    path = next(tmp_path.glob("*.rows"))
    with path.open("ab") as out:
        out.write(b"\x40\x00\x00\x00\x93")  # a length, then the kill
    dead._close_fds()
    heir = Spool(tmp_path)
    heir.open()
    assert [r.request_id for r in heir.adopt()] == ["r0", "r1", "r2"]


def test_the_spool_is_per_store_and_optional(tmp_path: Path) -> None:
    assert spool_dir(tmp_path, "sqlite:/a/usage.db") != spool_dir(tmp_path, "sqlite:/b/usage.db")
    unwritable = tmp_path / "ro"
    unwritable.mkdir()
    os.chmod(unwritable, 0o500)
    spool = Spool(unwritable / "spool")
    if os.geteuid() == 0:  # root writes anywhere: a file where the directory should be instead
        (unwritable / "spool").write_text("")
    spool.open()
    assert not spool.active
    spool.append(row(1.7e9, 1))  # never raises: the meter runs without it


@pytest.mark.parametrize("rows", [1, 7000])
def test_spooled_rows_go_with_each_flush(tmp_path: Path, rows: int) -> None:
    """Once the store holds a flush's rows, their files go: the directory never grows."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"

    async def run() -> None:
        meter = _meter(url, tmp_path / "spool")
        await meter.start()
        for i in range(rows):
            meter.record(row(time.time(), i), "m")
        await meter.flush(force=True)
        files = [p for p in (tmp_path / "spool").iterdir() if p.suffix == ".rows"]
        assert [p.stat().st_size for p in files] == [0]  # only the next, empty file
        await meter.stop()
        assert (await _count(url))[:2] == (rows, rows)

    asyncio.run(run())
