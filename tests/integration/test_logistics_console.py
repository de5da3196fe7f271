"""The installed console script end to end: a case walked to the custody log, ``actnav chain verify``
intact, then a custody row edited and another deleted with raw SQL, each reported naming the first
broken entry (exit 4); errors are one line on stderr, never a traceback."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from actnav.logistics import service
from actnav.logistics.lifecycle import Step

ACTNAV = Path(sys.executable).parent / "actnav"

pytestmark = pytest.mark.skipif(not ACTNAV.exists(), reason="the actnav console script is not installed")


class Console:
    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "actnav.db"
        self.env = {
            **os.environ,
            "ACTNAV_DATABASE_URL": f"sqlite:///{self.db}",
            "ACTNAV_ACTOR": "coordinator.a",
        }
        self.cwd = tmp_path

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(ACTNAV), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done


def test_tampering_is_reported_by_chain_verify(tmp_path: Path) -> None:
    run = Console(tmp_path)
    # The case is walked in-process (fast); only the verification goes through the console script.
    engine = create_engine(run.env["ACTNAV_DATABASE_URL"])
    at = dt.datetime(2026, 2, 1, 9, tzinfo=dt.UTC)
    common: dict[str, Any] = {"recorded_at": at, "actor": "coordinator.a"}
    service.open_case(engine, "V-1", "Kymriah", indication_id="b-all-up-to-25", at=at, **common)
    service.advance(engine, "V-1", Step.EVALUATION, at=at, reason="work-up", **common)
    service.attach_report(engine, "V-1", sha256="ab" * 32, name="r.html", size=1, at=at, **common)
    service.advance(engine, "V-1", Step.REVIEW, at=at, reason="ready", **common)
    service.advance(engine, "V-1", Step.AUTHORISATION, at=at, reason="MDT", decision="proceed", **common)
    service.advance(engine, "V-1", Step.COLLECTION, at=at, reason="approved", **common)
    din = service.add_collection(engine, "V-1", facility="W0001", at=at, **common).text
    for event in ("labelled", "shipped", "received"):
        service.append_custody_event(engine, "V-1", din, event, at=at, **common)
    engine.dispose()
    verified = run("chain", "verify", "--format", "json")
    assert json.loads(verified.stdout)["intact"] is True

    with sqlite3.connect(run.db) as connection:
        connection.execute("UPDATE custody_event SET actor = 'someone.else' WHERE seq = 2")
    broken = run("chain", "verify", code=4)
    assert broken.stdout.startswith("custody log BROKEN at entry 2")

    with sqlite3.connect(run.db) as connection:
        connection.execute("UPDATE custody_event SET actor = 'coordinator.a' WHERE seq = 2")
        connection.execute("DELETE FROM custody_event WHERE seq = 3")
    broken = run("chain", "verify", code=4)
    assert broken.stdout.startswith("custody log BROKEN at entry 3")
    assert "missing" in broken.stdout


def test_a_refused_transition_is_one_line_with_exit_2(tmp_path: Path) -> None:
    run = Console(tmp_path)
    run("case", "open", "V-2", "--product", "Kymriah", "--at", "2026-02-01T09:00")
    done = run("case", "advance", "V-2", "review", "--reason", "too early", code=2)
    assert done.stderr.strip().splitlines() == [
        "actnav: error: step: cannot move from referral to review: review does not follow referral "
        "(allowed: evaluation, withdrawn)"
    ]
