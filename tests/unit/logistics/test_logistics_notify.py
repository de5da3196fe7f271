"""E-mail notifications of due steps, sent to a local SMTP server (aiosmtpd) started by the test.

The messages must name cases by reference only: no patient name, date of birth or record number.
"""

from __future__ import annotations

import datetime as dt
import email
import socket
from collections.abc import Iterator
from dataclasses import replace
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine
from tests.unit.logistics.conftest import CASE, PATIENT, walk
from typer.testing import CliRunner

from actnav.errors import InputError
from actnav.logistics import service
from actnav.logistics.cli import case_app
from actnav.logistics.lifecycle import Step
from actnav.logistics.notify import (
    SmtpSettings,
    compose_due_message,
    notify_due_steps,
    parse_recipients,
    send_message,
)


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[Message]:
        return [email.message_from_bytes(e.content) for e in self.envelopes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def settings(port: int, **changes: Any) -> SmtpSettings:
    base = SmtpSettings(
        host="127.0.0.1",
        port=port,
        sender="actnav@centre.example",
        starttls=False,
        recipients=("coord@centre.example",),
    )
    return replace(base, **changes)


@pytest.fixture
def due(engine: Engine) -> list[service.DueStep]:
    walk(engine, Step.MANUFACTURING)  # collected 12 Feb 2026; release expected 14 days later
    found = service.due_steps(engine, dt.date(2026, 3, 1))
    assert found
    return found


def test_due_steps_are_mailed_by_case_reference_only(
    smtp: tuple[Inbox, int], due: list[service.DueStep]
) -> None:
    inbox, port = smtp
    result = notify_due_steps(due, settings(port), as_of=dt.date(2026, 3, 1))
    assert result.sent and result.recipients == ("coord@centre.example",)
    (message,) = inbox.messages()
    assert inbox.envelopes[0].rcpt_tos == ["coord@centre.example"]
    assert message["From"] == "actnav@centre.example"
    assert "overdue" in message["Subject"] and "2026-03-01" in message["Subject"]
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert (
        f"case {CASE}: Product release (end of release testing) on 2026-02-26 (overdue, 3 day(s) overdue)"
        in body
    )
    for value in PATIENT.values():
        assert str(value) not in body and str(value) not in str(message)


def test_nothing_is_sent_when_nothing_is_due_or_on_a_dry_run(
    smtp: tuple[Inbox, int], due: list[service.DueStep]
) -> None:
    inbox, port = smtp
    assert not notify_due_steps([], settings(port), as_of=dt.date(2026, 3, 1)).sent
    assert not notify_due_steps(due, settings(port), as_of=dt.date(2026, 3, 1), dry_run=True).sent
    assert inbox.envelopes == []


def test_the_cli_sends_through_the_configured_server(
    smtp: tuple[Inbox, int], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, port = smtp
    walk(engine, Step.MANUFACTURING)
    url = str(engine.url)
    env = {
        "ACTNAV_SMTP_HOST": "127.0.0.1",
        "ACTNAV_SMTP_PORT": str(port),
        "ACTNAV_SMTP_FROM": "actnav@centre.example",
        "ACTNAV_SMTP_STARTTLS": "0",
        "ACTNAV_NOTIFY_TO": "a@centre.example, b@centre.example",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(case_app, ["notify", "--as-of", "2026-03-01", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "sent to a@centre.example, b@centre.example" in result.output
    assert inbox.envelopes[0].rcpt_tos == ["a@centre.example", "b@centre.example"]
    result = CliRunner().invoke(
        case_app, ["notify", "--as-of", "2026-03-01", "--to", "c@centre.example", "--database-url", url]
    )
    assert result.exit_code == 0 and inbox.envelopes[1].rcpt_tos == ["c@centre.example"]


def test_starttls_is_required_unless_switched_off(
    smtp: tuple[Inbox, int], due: list[service.DueStep]
) -> None:
    _inbox, port = smtp
    message = compose_due_message(
        due, as_of=dt.date(2026, 3, 1), sender="actnav@centre.example", recipients=["x@y.example"]
    )
    with pytest.raises(InputError, match="does not offer STARTTLS"):
        send_message(settings(port, starttls=True), message)
    with pytest.raises(InputError, match="without STARTTLS"):
        send_message(settings(port, username="u", password="p"), message)


def test_an_unreachable_server_is_an_input_error() -> None:
    message = compose_due_message(
        [], as_of=dt.date(2026, 3, 1), sender="a@b.example", recipients=["c@d.example"]
    )
    with pytest.raises(InputError, match="cannot send"):
        send_message(settings(_free_port(), timeout=2.0), message)


def test_settings_come_from_the_environment() -> None:
    got = SmtpSettings.from_env(
        {
            "ACTNAV_SMTP_HOST": "smtp.example",
            "ACTNAV_SMTP_FROM": "a@b.example",
            "ACTNAV_NOTIFY_TO": "x@y.example",
        }
    )
    assert (got.port, got.starttls, got.recipients) == (587, True, ("x@y.example",))
    plain = SmtpSettings.from_env(
        {"ACTNAV_SMTP_HOST": "h", "ACTNAV_SMTP_FROM": "a@b.example", "ACTNAV_SMTP_STARTTLS": "0"}
    )
    assert (plain.port, plain.starttls) == (25, False)
    assert "secret" not in repr(replace(plain, password="secret"))
    for env, where in (
        ({}, "ACTNAV_SMTP_HOST"),
        ({"ACTNAV_SMTP_HOST": "h"}, "ACTNAV_SMTP_FROM"),
        (
            {"ACTNAV_SMTP_HOST": "h", "ACTNAV_SMTP_FROM": "a@b.example", "ACTNAV_SMTP_PORT": "x"},
            "ACTNAV_SMTP_PORT",
        ),
        (
            {"ACTNAV_SMTP_HOST": "h", "ACTNAV_SMTP_FROM": "a@b.example", "ACTNAV_SMTP_STARTTLS": "maybe"},
            "ACTNAV_SMTP_STARTTLS",
        ),
    ):
        with pytest.raises(InputError) as caught:
            SmtpSettings.from_env(env)
        assert caught.value.where == where


def test_recipients_are_checked() -> None:
    assert parse_recipients(["a@b.example, c@d.example", "a@b.example"]) == ("a@b.example", "c@d.example")
    for bad in ("no-at-sign", "a@b@c", "a b@c.example", "x@y.example\r\nBcc: z@w.example"):
        with pytest.raises(InputError):
            parse_recipients(bad)
    with pytest.raises(InputError, match="no recipients"):
        notify_due_steps([], settings(25, recipients=()), as_of=dt.date(2026, 3, 1))
