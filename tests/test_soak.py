"""The chaos soak, shortened to a minute (benchmarks/soak.py; `make soak` runs ten): three
instances behind nginx on a Redis Cluster and PostgreSQL, with an instance killed, a Redis
master stopped until its replica takes over, PostgreSQL restarted and a provider failing, then
dying. Every check the soak makes must pass: no client-visible failure, the ledger exact,
limits and budgets held, no lease left, the caches shared, no PII upstream, memory flat."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT


def test_a_minute_of_chaos_loses_nothing(tmp_path: Path) -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.fail("the soak needs nginx as its load balancer: apt-get install nginx (make test does)")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--duration", "60", "--rate", "25", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    report = (tmp_path / "soak.md").read_text() if (tmp_path / "soak.md").exists() else ""
    assert done.returncode == 0, f"{report}\n{done.stderr[-6000:]}"
    summary = json.loads((tmp_path / "soak.json").read_text())
    assert summary["failed_checks"] == []
    assert summary["failures"] == 0 and summary["lost"] == 0 and summary["doubled"] == 0
    assert summary["answered"] == summary["rows"] > 1000
    assert summary["cross_instance_hits"] > 0 and summary["semantic_hits"] > 0
    assert [f["name"] for f in summary["faults"]] == [
        "instance killed", "redis master stopped", "postgres restart", "provider failing 50%", "provider dead",
    ]  # fmt: skip
    assert all("never promoted" not in f["detail"] for f in summary["faults"])
