"""Fresh PostgreSQL databases on the machine's server (127.0.0.1:5432, trust auth, database
`test`), for the ledger's tests; a test that finds no server fails saying how to start one."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

PG = "postgresql://postgres@127.0.0.1:5432/{db}"


def postgres_database() -> str:
    """A fresh database on the machine's PostgreSQL, dropped by the caller."""
    name = f"gw_test_{secrets.token_hex(4)}"

    async def create() -> None:
        try:
            conn = await asyncpg.connect(PG.format(db="test"), timeout=5)
        except (OSError, asyncpg.PostgresError) as err:
            pytest.fail(
                f"PostgreSQL is needed on 127.0.0.1:5432 with trust auth and a database `test`"
                f" (apt-get install postgresql; service postgresql start): {err}"
            )
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(create())
    return name


def drop_database(name: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(PG.format(db="test"), timeout=5)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    asyncio.run(drop())


class PrivatePostgres:
    """A PostgreSQL server of its own (initdb in a temp dir, a free port, trust auth), for
    what restarts or stops the server: the machine's own is never touched."""

    def __init__(self) -> None:
        import glob
        import os
        import shutil
        import subprocess
        import tempfile

        from tests.harness import free_port

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = shutil.which("initdb") or (found[-1] if found else None)
        if initdb is None:
            pytest.fail("PostgreSQL's server programs are needed (apt-get install postgresql)")
        self._bin = os.path.dirname(initdb)
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="gateway-pg-")
        # The server refuses to run as root: it runs as the postgres user then.
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.directory, "postgres")
        self._subprocess = subprocess
        made = subprocess.run([*self._as, initdb, "-D", f"{self.directory}/data", "-A", "trust",
                               "-U", "postgres", "--no-sync"], capture_output=True, text=True)  # fmt: skip
        if made.returncode != 0:
            pytest.fail(f"initdb failed: {made.stderr}")
        self._ctl("start")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, action: str, *extra: str) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
                   f"{self.directory} -c fsync=off -c max_connections=200")  # fmt: skip
        done = self._subprocess.run(
            [*self._as, f"{self._bin}/pg_ctl", "-D", f"{self.directory}/data", "-w", "-t", "60",
             "-l", f"{self.directory}/log", "-o", options, action, *extra],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0 and action != "stop":
            pytest.fail(f"pg_ctl {action} failed: {done.stdout}{done.stderr}")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        import shutil

        self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
