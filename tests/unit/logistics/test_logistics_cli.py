"""``actnav case ...`` and ``actnav chain ...`` through the main CLI app (CliRunner).

A Yescarta case walked with the commands a coordinator would type; patient identifiers come from
files and never appear in the output. Expected values: Yescarta 2 x 10^6/kg capped at 2 x 10^8
(clinical-reference 1.2); ISBT 128 check character by ISO/IEC 7064 MOD 37-2 (JPAC Annex 2).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.unit.logistics.conftest import OTHER_PATIENT, PATIENT
from typer.testing import CliRunner

from actnav.cli import app
from actnav.logistics.cli import EXIT_CHAIN_BROKEN, case_app, chain_app

runner = CliRunner()


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.db = tmp_path / "actnav.db"
        self.url = f"sqlite:///{self.db}"

    def file(self, name: str, data: Any) -> str:
        path = self.tmp / name
        path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
        return str(path)

    def __call__(self, *args: str, code: int = 0) -> str:
        group, *rest = args
        sub = {"case": case_app, "chain": chain_app}[
            group
        ]  # the sub-apps directly: faster than the whole CLI
        result = runner.invoke(sub, [*rest, "--database-url", self.url], env={"ACTNAV_ACTOR": "nurse.k"})
        assert result.exit_code == code, result.output
        return result.output


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def walk_to_lymphodepletion(cli: Cli) -> str:
    me = cli.file("me.json", PATIENT)
    cli("case", "open", "C-7", "--product", "Yescarta", "--identity", me, "--at", "2026-02-01T09:00")
    cli("case", "advance", "C-7", "evaluation", "--reason", "work-up", "--at", "2026-02-02T09:00")
    report = cli.file("report.html", "<html>evaluation</html>")
    cli(
        "case",
        "advance",
        "C-7",
        "review",
        "--report",
        report,
        "--reason",
        "report ready",
        "--at",
        "2026-02-05T09:00",
    )
    cli(
        "case", "advance", "C-7", "authorisation", "--decision", "proceed", "--indication", "lbcl-second-line",
        "--reason", "MDT agreed", "--at", "2026-02-06T15:00",
    )  # fmt: skip
    cli("case", "advance", "C-7", "collection", "--reason", "payer approved", "--at", "2026-02-09T10:00")
    out = cli("case", "collect", "C-7", "--facility", "G1234", "--at", "2026-02-12T08:00")
    din = out.split()[0]
    assert re.fullmatch(r"G123426000001.", din)
    for event, at in (("labelled", "2026-02-12T08:30"), ("shipped", "2026-02-12T12:00")):
        cli("case", "custody", "C-7", "--din", din, "--event", event, "--at", at)
    cli(
        "case",
        "advance",
        "C-7",
        "shipped_to_manufacturing",
        "--reason",
        "courier",
        "--at",
        "2026-02-12T12:00",
    )
    cli("case", "custody", "C-7", "--din", din, "--event", "received", "--at", "2026-02-13T09:00")
    cli("case", "advance", "C-7", "manufacturing", "--reason", "started", "--at", "2026-02-13T10:00")
    cli("case", "advance", "C-7", "release_testing", "--reason", "QC", "--at", "2026-02-24T10:00")
    cert = cli.file("cert.json", {"cells": 1.6e8, "lot": "L1"})
    out = cli(
        "case", "check-certificate", "C-7", "--weight-kg", "80", "--certificate", cert, "--record", "--din", din,
        "--at", "2026-02-26T09:00",
    )  # fmt: skip
    assert out.startswith("WITHIN LABEL")
    cli("case", "custody", "C-7", "--din", din, "--event", "shipped", "--at", "2026-02-26T10:00")
    cli("case", "advance", "C-7", "shipped_back", "--reason", "shipped", "--at", "2026-02-26T10:00")
    cli("case", "custody", "C-7", "--din", din, "--event", "received", "--at", "2026-02-27T10:00")
    cli("case", "advance", "C-7", "received", "--reason", "in the lab", "--at", "2026-02-27T10:30")
    cli(
        "case", "advance", "C-7", "lymphodepletion", "--ld-start", "2026-02-28", "--ld-end", "2026-03-02",
        "--regimen", "Flu/Cy", "--reason", "start", "--at", "2026-02-28T08:00",
    )  # fmt: skip
    cli("case", "custody", "C-7", "--din", din, "--event", "thawed", "--at", "2026-03-05T09:30")
    return din


def test_a_case_walked_with_the_commands_then_tampered_with(cli: Cli) -> None:
    din = walk_to_lymphodepletion(cli)
    me = str(cli.tmp / "me.json")
    other_bag = cli.file("other.json", {**OTHER_PATIENT, "din": din})
    out = cli("case", "bedside-check", "C-7", "--bag", other_bag, "--wristband", me, code=2)
    assert "REFUSED" in out
    refused = cli(
        "case", "advance", "C-7", "infused", "--bag", other_bag, "--wristband", me, "--reason", "day 0",
        "--at", "2026-03-05T10:00", code=2,
    )  # fmt: skip
    assert "bedside check failed" in refused
    for value in (*PATIENT.values(), *OTHER_PATIENT.values()):
        assert str(value) not in out + refused
    bag = cli.file("bag.json", {**PATIENT, "din": din})
    cli(
        "case",
        "advance",
        "C-7",
        "infused",
        "--bag",
        bag,
        "--wristband",
        me,
        "--reason",
        "day 0",
        "--at",
        "2026-03-05T10:00",
    )
    shown = json.loads(cli("case", "show", "C-7", "--format", "json"))
    assert shown["step"] == "infused"
    assert [c["custody"][-1] for c in shown["collections"]] == ["infused"]
    assert "Doe" not in json.dumps(shown)

    assert cli("chain", "verify").startswith("custody log intact: 8 entries")
    log = json.loads(cli("chain", "log", "--din", din, "--format", "json"))
    assert [e["event"] for e in log][:3] == ["collected", "labelled", "shipped"]

    with sqlite3.connect(cli.db) as connection:
        connection.execute("UPDATE custody_event SET at = '2026-02-13T08:00:00+00:00' WHERE seq = 4")
    out = cli("chain", "verify", code=EXIT_CHAIN_BROKEN)
    assert out.startswith("custody log BROKEN at entry 4")
    report = json.loads(cli("chain", "verify", "--format", "json", code=EXIT_CHAIN_BROKEN))
    assert (report["intact"], report["first_broken_seq"]) == (False, 4)


def test_refused_transitions_print_every_reason(cli: Cli) -> None:
    cli("case", "open", "C-8", "--product", "Kymriah", "--at", "2026-02-01T09:00")
    out = cli("case", "advance", "C-8", "infused", "--reason", "x", code=2)
    assert "infusion needs the bag label and the wristband" in out
    bag = cli.file("bag.json", {**PATIENT, "din": "G123426000001" + "4"})
    me = cli.file("me.json", PATIENT)
    out = cli("case", "advance", "C-8", "infused", "--reason", "x", "--bag", bag, "--wristband", me, code=2)
    assert "infused does not follow referral" in out
    assert "release is not recorded" in out and "lymphodepletion is not recorded" in out
    assert "actnav: error: step:" in out and "Traceback" not in out


def test_dose_command_uses_the_label_numbers(cli: Cli) -> None:
    out = cli(
        "case", "dose", "--product", "Yescarta", "--indication", "lbcl-second-line", "--weight-kg", "120"
    )
    assert "2 x 10^8 CAR-positive viable T cells" in out and "capped" in out
    data = json.loads(
        cli(
            "case",
            "dose",
            "--product",
            "tisagenlecleucel",
            "--indication",
            "b-all-up-to-25",
            "--weight-kg",
            "50",
            "-f",
            "json",
        )
    )
    assert (data["min_cells"], data["max_cells"], data["basis"]) == (1e7, 2.5e8, "per_kg")
    out = cli("case", "dose", "--product", "tisagenlecleucel", "--weight-kg", "40", code=2)
    assert "--indication" in out


def test_schedule_plan_and_slip(cli: Cli) -> None:
    out = cli(
        "case", "schedule", "--product", "axi-cel", "--indication", "lbcl-second-line", "--collection", "2026-03-02",
        "--as-of", "2026-03-01",
    )  # fmt: skip
    infusion = next(line for line in out.splitlines() if "Infusion (day 0)" in line)
    assert infusion.split()[:4] == ["2026-03-24", "day", "+0", "planned"]
    cli(
        "case",
        "open",
        "C-9",
        "--product",
        "axi-cel",
        "--indication",
        "lbcl-second-line",
        "--at",
        "2026-02-01T09:00",
    )
    # A slip is a day still ahead of the real today (slips into the past are refused).
    release = dt.date.today() + dt.timedelta(days=30)
    out = cli(
        "case", "schedule", "C-9", "--collection", "2026-03-02", "--slip", f"release={release}", "--reason",
        "slot moved", "--as-of", "2026-03-01", "--format", "json",
    )  # fmt: skip
    data = json.loads(out)
    milestones = {m["key"]: m for m in data["milestones"]}
    assert milestones["release"]["date"] == release.isoformat()
    # +2 days shipment back, +1 day to lymphodepletion, 3 days of it, infusion 3 days after its end
    assert milestones["infusion"]["date"] == (release + dt.timedelta(days=8)).isoformat()
    written = cli.tmp / "timeline.txt"
    cli(
        "case",
        "schedule",
        "C-9",
        "--collection",
        "2026-03-02",
        "--as-of",
        "2026-03-01",
        "--out",
        str(written),
    )
    assert "Infusion (day 0)" in written.read_text(encoding="utf-8")


def test_certificate_out_of_specification_says_what_to_do(cli: Cli) -> None:
    cert = cli.file("cert.json", {"cells": 2.4e8})
    out = cli(
        "case", "check-certificate", "--product", "Yescarta", "--indication", "lbcl-second-line", "--weight-kg", "120",
        "--certificate", cert,
    )  # fmt: skip
    assert out.startswith("OUT OF SPECIFICATION") and "what to do:" in out
    bad = cli.file("bad.json", {"cells": "many"})
    out = cli(
        "case",
        "check-certificate",
        "--product",
        "Yescarta",
        "--weight-kg",
        "80",
        "--certificate",
        bad,
        code=2,
    )
    assert "cells" in out


def test_notify_dry_run_lists_due_steps_by_case_reference(cli: Cli) -> None:
    cli(
        "case",
        "open",
        "C-10",
        "--product",
        "axi-cel",
        "--indication",
        "lbcl-second-line",
        "--at",
        "2026-02-01T09:00",
    )
    cli(
        "case",
        "schedule",
        "C-10",
        "--slip",
        f"collection={dt.date.today()}",
        "--reason",
        "booked",
    )
    out = cli("case", "notify", "--dry-run")
    assert "C-10  Collection (due)" in out and "nothing sent" in out


def test_list_and_show_text(cli: Cli) -> None:
    cli("case", "open", "C-11", "--product", "Amtagvi", "--at", "2026-02-01T09:00")
    assert "C-11  lifileucel  referral" in cli("case", "list")
    shown = cli("case", "show", "C-11")
    assert "Case C-11: Referral" in shown and "identity NOT registered" in shown
    out = cli("case", "show", "Jane Doe", code=2)
    assert "CASE" in out


def test_case_and_chain_are_mounted_on_the_main_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'actnav.db'}"
    result = runner.invoke(app, ["case", "--help"])
    assert result.exit_code == 0 and "bedside-check" in result.output and "check-certificate" in result.output
    result = runner.invoke(app, ["chain", "verify", "--database-url", url])
    assert result.exit_code == 0 and "custody log intact: 0 entries" in result.output


def test_open_with_an_unknown_indication_lists_the_ids(cli: Cli) -> None:
    out = cli("case", "open", "C-12", "--product", "Kymriah", "--indication", "x", code=2)
    assert "--indication" in out
    assert "b-all-up-to-25, lbcl-after-2-lines, fl-after-2-lines" in out


def test_at_in_the_future_or_before_the_previous_step_names_the_option(cli: Cli) -> None:
    cli("case", "open", "C-13", "--product", "Kymriah", "--at", "2026-02-01T09:00")
    out = cli("case", "advance", "C-13", "evaluation", "--reason", "r", "--at", "2099-01-01T00:00", code=2)
    assert "--at" in out and "in the future" in out
    out = cli("case", "advance", "C-13", "evaluation", "--reason", "r", "--at", "2026-01-01T00:00", code=2)
    assert "--at" in out and "previous step referral (2026-02-01T09:00Z)" in out


def test_free_text_options_warn_against_patient_identifiers() -> None:
    for command, option in (
        ("advance", "--deviation"),
        ("custody", "--detail"),
        ("check-certificate", "--accept-oos"),
    ):
        result = runner.invoke(case_app, [command, "--help"], env={"COLUMNS": "200"})
        text = " ".join(result.output.split())  # help is wrapped
        assert result.exit_code == 0
        assert option in text and "do not write patient identifiers" in text, command
    result = runner.invoke(case_app, ["check-certificate", "--help"], env={"COLUMNS": "200"})
    assert "when the product was released" in " ".join(result.output.split())
