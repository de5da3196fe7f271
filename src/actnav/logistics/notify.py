"""E-mail notifications of due and overdue steps, through SMTP.

Settings come from the environment (:meth:`SmtpSettings.from_env`):

============================  ===================================================================
``ACTNAV_SMTP_HOST``          SMTP server host (required to send).
``ACTNAV_SMTP_PORT``          port; default 587 with STARTTLS, else 25.
``ACTNAV_SMTP_FROM``          sender address (required).
``ACTNAV_SMTP_STARTTLS``      ``1`` (default) upgrades the connection with STARTTLS and refuses to
                              send if the server does not offer it; ``0`` sends in clear (a local
                              relay only).
``ACTNAV_SMTP_USER``          user name for SMTP AUTH (optional; needs STARTTLS).
``ACTNAV_SMTP_PASSWORD``      its password.
``ACTNAV_SMTP_TIMEOUT``       seconds (default 30).
``ACTNAV_NOTIFY_TO``          recipients, comma-separated (the CLI's ``--to`` wins).
============================  ===================================================================

Messages name cases by their pseudonymous reference only: no patient name, date of birth or record
number is ever put in an e-mail (the service does not hold them).
"""

from __future__ import annotations

import datetime as dt
import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid

from actnav.errors import InputError
from actnav.logistics.service import DueStep


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send (see the module docstring for the environment variables)."""

    host: str
    port: int
    sender: str
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    recipients: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmtpSettings:
        """Read the settings from the environment.

        Raises:
            InputError: the host or sender is missing, or a number or switch is malformed (names the
                variable).
        """
        env = os.environ if env is None else env
        host = env.get("ACTNAV_SMTP_HOST", "").strip()
        sender = env.get("ACTNAV_SMTP_FROM", "").strip()
        if not host:
            raise InputError("no SMTP server configured", where="ACTNAV_SMTP_HOST")
        if not sender or "@" not in sender:
            raise InputError("no sender address configured", where="ACTNAV_SMTP_FROM")
        switch = env.get("ACTNAV_SMTP_STARTTLS", "1").strip().lower()
        if switch not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
            raise InputError(f"expected 1 or 0, got {switch!r}", where="ACTNAV_SMTP_STARTTLS")
        starttls = switch in ("1", "true", "yes", "on")
        port = _int(env.get("ACTNAV_SMTP_PORT"), 587 if starttls else 25, "ACTNAV_SMTP_PORT")
        timeout = float(_int(env.get("ACTNAV_SMTP_TIMEOUT"), 30, "ACTNAV_SMTP_TIMEOUT"))
        recipients = parse_recipients(env.get("ACTNAV_NOTIFY_TO", ""), where="ACTNAV_NOTIFY_TO")
        return cls(
            host=host,
            port=port,
            sender=sender,
            starttls=starttls,
            username=env.get("ACTNAV_SMTP_USER") or None,
            password=env.get("ACTNAV_SMTP_PASSWORD") or None,
            timeout=timeout,
            recipients=recipients,
        )


def _int(text: str | None, default: int, where: str) -> int:
    if text is None or not text.strip():
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise InputError(f"expected a whole number, got {text!r}", where=where) from None
    if not 0 < value < 65536:
        raise InputError(f"out of range: {value}", where=where)
    return value


def parse_recipients(text: str | Sequence[str], *, where: str = "--to") -> tuple[str, ...]:
    """Addresses from a comma-separated text (or a list of them), each checked for one ``@``.

    Raises:
        InputError: an address is malformed (``where``).
    """
    items = [text] if isinstance(text, str) else list(text)
    found: list[str] = []
    for item in items:
        for part in item.split(","):
            address = part.strip()
            if not address:
                continue
            if address.count("@") != 1 or any(c.isspace() or c in "<>\r\n" for c in address):
                raise InputError(f"not an e-mail address: {address!r}", where=where)
            found.append(address)
    return tuple(dict.fromkeys(found))


def compose_due_message(
    due: Sequence[DueStep], *, as_of: dt.date, sender: str, recipients: Sequence[str]
) -> EmailMessage:
    """The e-mail listing due and overdue steps, by case reference (never a patient identifier)."""
    overdue = [d for d in due if d.status == "overdue"]
    message = EmailMessage()
    message["Subject"] = (
        f"actnav: {len(due)} vein-to-vein step(s) due, {len(overdue)} overdue ({as_of.isoformat()})"
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    lines = [f"Vein-to-vein steps due or overdue as of {as_of.isoformat()}:", ""]
    for item in due:
        late = f", {item.days_late} day(s) overdue" if item.status == "overdue" else ""
        lines.append(f"- case {item.case_ref}: {item.title} on {item.date.isoformat()} ({item.status}{late})")
    lines += [
        "",
        "Open the case in actnav (actnav case show CASE) to record what was done.",
        "This message names cases by their reference only.",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def send_message(settings: SmtpSettings, message: EmailMessage) -> None:
    """Send one message through the configured SMTP server.

    Raises:
        InputError: the server cannot be reached, does not offer STARTTLS when required, refuses the
            login or the recipients, or credentials would be sent without STARTTLS.
    """
    if settings.username and not settings.starttls:
        raise InputError("refusing to send SMTP credentials without STARTTLS", where="ACTNAV_SMTP_STARTTLS")
    where = f"smtp://{settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            smtp.ehlo()
            if settings.starttls:
                if not smtp.has_extn("starttls"):
                    raise InputError(
                        "the server does not offer STARTTLS",
                        where=where,
                        hint="set ACTNAV_SMTP_STARTTLS=0 for a local relay",
                    )
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise InputError("the SMTP server refused the login", where=where) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise InputError(
            f"the SMTP server refused the recipients: {', '.join(exc.recipients)}", where=where
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise InputError(f"cannot send through the SMTP server: {exc}", where=where) from exc


@dataclass(frozen=True)
class NotifyResult:
    """What :func:`notify_due_steps` did."""

    due: tuple[DueStep, ...]
    sent: bool
    recipients: tuple[str, ...]


def notify_due_steps(
    due: Sequence[DueStep],
    settings: SmtpSettings,
    *,
    as_of: dt.date,
    recipients: Sequence[str] | None = None,
    dry_run: bool = False,
) -> NotifyResult:
    """E-mail the due and overdue steps (nothing is sent when there are none, or with ``dry_run``).

    Args:
        due: from :func:`actnav.logistics.service.due_steps`.
        settings: the SMTP settings.
        as_of: the day the steps are due for.
        recipients: overrides ``settings.recipients``.
        dry_run: compose but do not send.

    Raises:
        InputError: no recipients; see :func:`send_message`.
    """
    to = tuple(recipients) if recipients else settings.recipients
    if not to:
        raise InputError("no recipients: give --to or set ACTNAV_NOTIFY_TO", where="--to")
    if not due or dry_run:
        return NotifyResult(due=tuple(due), sent=False, recipients=to)
    send_message(settings, compose_due_message(due, as_of=as_of, sender=settings.sender, recipients=to))
    return NotifyResult(due=tuple(due), sent=True, recipients=to)
