"""The usage ledger's local spool: every row is appended to a file as it is recorded, so a
process killed with kill -9, or stopped while the store is down, loses nothing.

Each process owns a directory entry `<owner>.lock` (held with flock for its life) and writes
`<owner>.<generation>.rows`: length-prefixed msgpack arrays of rows, the rows of one event
loop tick written with one write(2) at its end (the page cache keeps it when the process
dies; only a kill landing inside that tick can lose its rows). The meter seals a generation
when it takes a batch and deletes the sealed files once the store has committed them. A
process that finds a lock it can take (its owner died) adopts that owner's files: their rows
are written again, and the store drops the ones it already holds (a crash between commit
and deletion), so a row is never lost and never doubled.

The spool sits in GATEWAY_DATA_DIR/spool/<store>, one directory per store, so only processes
writing the same ledger adopt each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import struct
import uuid
from pathlib import Path

import msgspec

from gateway.metering.row import UsageRow

LOG = logging.getLogger("gateway.metering")
_LENGTH = struct.Struct("<I")
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(list[UsageRow]).decode


def spool_dir(data_dir: Path, store_description: str) -> Path:
    digest = hashlib.sha256(store_description.encode()).hexdigest()[:16]
    return data_dir / "spool" / digest


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.owner = uuid.uuid4().hex
        self._lock_fd = -1
        self._fd = -1
        self._generation = 0
        self._oldest = 0  # this process's oldest generation whose file may still be there
        self._written = False  # rows in the current generation's file
        self._adopted: list[Path] = []  # files of dead owners, deleted once written again
        self._taken = 0
        self._rows: list[UsageRow] = []  # this tick's rows, written at its end

    def open(self) -> None:
        """Creates the directory and takes this process's lock; on failure the meter runs
        without a spool (rows then live in memory only, as before), said once in the log."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = self.directory / f"{self.owner}.lock"
            self._lock_fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._fd = self._new_file()
        except OSError as err:
            LOG.warning("usage spool %s unavailable (%s): a kill -9 may lose queued rows",
                        self.directory, err)  # fmt: skip
            self._close_fds()

    @property
    def active(self) -> bool:
        return self._fd >= 0

    def _path(self, generation: int) -> Path:
        return self.directory / f"{self.owner}.{generation}.rows"

    def _new_file(self) -> int:
        path = self._path(self._generation)
        return os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)

    def append(self, row: UsageRow) -> None:
        if self._fd < 0:
            return
        rows = self._rows
        rows.append(row)
        if len(rows) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.write)
            except RuntimeError:  # no loop (a tool, a test): at once
                self.write()

    def write(self) -> None:
        """This tick's rows, in one write(2)."""
        if not self._rows or self._fd < 0:
            return
        data = _ENCODE(self._rows)
        self._rows = []
        try:
            os.write(self._fd, _LENGTH.pack(len(data)) + data)
        except OSError as err:  # a full disk: keep serving, rows stay in memory
            LOG.warning("usage spool write failed (%s): spooling stops", err)
            self._close_fds()
            return
        self._written = True

    def seal(self) -> int:
        """Closes the current file (its rows are what the meter takes now) and starts the
        next; returns the generation sealed, which `committed` later deletes."""
        self.write()
        if self._fd < 0 or not self._written:
            return self._generation - 1
        sealed = self._generation
        os.close(self._fd)
        self._generation += 1
        self._written = False
        try:
            self._fd = self._new_file()
        except OSError as err:
            LOG.warning("usage spool %s: no new file (%s): spooling stops", self.directory, err)
            self._fd = -1
        return sealed

    def committed(self, generation: int) -> None:
        """Everything up to `generation` is in the store: its files go (never the file
        being written)."""
        self._drop(min(generation, self._generation - 1))

    def _drop(self, through: int) -> None:
        """This process's files up to `through`: it knows their names, no listing needed."""
        for number in range(self._oldest, through + 1):
            with contextlib.suppress(OSError):
                self._path(number).unlink()
        self._oldest = max(self._oldest, through + 1)

    def adopt(self) -> list[UsageRow]:
        """The rows of owners that died (their lock is free). Each of their files is renamed
        into this process's name first (atomic: two adopters never take the same file), so
        if this process dies too, the next adopter finds them; `adopted_written` deletes them
        once the store has their rows."""
        rows: list[UsageRow] = []
        if self._lock_fd < 0:
            return rows
        try:
            locks = list(self.directory.glob("*.lock"))
        except OSError:
            return rows
        for lock in locks:
            owner = lock.name.removesuffix(".lock")
            if owner == self.owner:
                continue
            try:
                fd = os.open(lock, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its owner is alive
                os.close(fd)
                continue
            for path in sorted(self.directory.glob(f"{owner}.*.rows"), key=_order):
                self._taken += 1
                mine = self.directory / f"{self.owner}.a{self._taken}.rows"
                try:
                    path.rename(mine)
                except OSError:  # another adopter took it
                    continue
                rows.extend(_read(mine))
                self._adopted.append(mine)
            with contextlib.suppress(OSError):
                lock.unlink()
            os.close(fd)
        if rows:
            LOG.warning("usage spool: %d rows of a process that stopped uncleanly are written"
                        " again", len(rows))  # fmt: skip
        return rows

    def adopted_written(self) -> None:
        for path in self._adopted:
            with contextlib.suppress(OSError):
                path.unlink()
        self._adopted = []

    def close(self, *, everything_written: bool) -> None:
        """A clean stop: with every row in the store, the files and the lock go; otherwise
        they stay for the next process to adopt."""
        self.write()
        if everything_written and self._fd >= 0:
            self._drop(self._generation)
            with contextlib.suppress(OSError):
                (self.directory / f"{self.owner}.lock").unlink()
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = -1


def _order(path: Path) -> tuple[int, int]:
    """A dead owner's files oldest first: the ones it adopted (a1, a2, …), then its own."""
    number = path.name.split(".")[1]
    if number.startswith("a") and number[1:].isdigit():
        return (0, int(number[1:]))
    return (1, int(number)) if number.isdigit() else (2, 0)


def _read(path: Path) -> list[UsageRow]:
    """A file's rows; a record cut short by the kill (the last, half written) is dropped,
    since its requests' rows never reached the queue whole either."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    rows: list[UsageRow] = []
    at = 0
    while at + 4 <= len(data):
        (size,) = _LENGTH.unpack_from(data, at)
        if at + 4 + size > len(data):
            break
        try:
            rows.extend(_DECODE(data[at + 4 : at + 4 + size]))
        except msgspec.DecodeError:
            break
        at += 4 + size
    return rows
