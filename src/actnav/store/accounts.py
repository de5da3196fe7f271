"""Accounts, sessions and the audit log (tables ``app_user``, ``login_session``, ``audit_event``).

* Passwords are hashed with Argon2id (``argon2-cffi``, RFC 9106 parameters); the hash string
  carries its own parameters, so stronger settings later still verify old hashes and rehash them
  at the next login.
* A login creates a server-side session: the browser holds a random 256-bit token in a cookie; the
  table keeps only its SHA-256, so a copy of the database cannot be replayed as a login. Each
  session has its own CSRF token for forms and API writes.
* The audit log records who (user id and role), what (action, resource type and id, the patient's
  internal id) and when. It never records names, birth dates or other identifiers of a patient.

Roles: ``coordinator`` and ``physician`` (the care team; see every patient) and ``patient``
(sees only the record the account is linked to).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from actnav.errors import InputError
from actnav.store.db import Base, storable

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD = 10  # NIST SP 800-63B-4 section 3.1.1.2 asks at least 8; we ask 10
MAX_PASSWORD = 256
SESSION_HOURS = 12
# Sign-in throttling (NIST SP 800-63B-4 section 3.2.2 asks to limit failed attempts per account).
FAILED_LOGIN_LIMIT = 10
FAILED_LOGIN_WINDOW = dt.timedelta(minutes=15)

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the username does not exist, so a wrong name costs as long as a wrong
    password. Made on first use: hashing at import would slow every command that opens the database."""
    return _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    """What an account may see and do."""

    COORDINATOR = "coordinator"
    PHYSICIAN = "physician"
    PATIENT = "patient"

    @property
    def is_staff(self) -> bool:
        return self is not Role.PATIENT


class UserRow(Base):
    """One account (table ``app_user``)."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    patient_id: Mapped[int | None] = mapped_column(
        ForeignKey("patient.id", ondelete="SET NULL"), nullable=True, index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LoginSessionRow(Base):
    """A signed-in browser or API client (table ``login_session``)."""

    __tablename__ = "login_session"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AuditEventRow(Base):
    """One view or change of patient data, or a sign-in event (table ``audit_event``)."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    patient_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass(frozen=True)
class Account:
    """The signed-in user, as the web layer sees it."""

    id: int
    username: str
    display_name: str
    role: Role
    patient_id: int | None
    csrf_token: str = ""

    @property
    def is_staff(self) -> bool:
        return self.role.is_staff


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(when: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were stored in UTC.
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def check_password_policy(password: str) -> None:
    """Refuse a password that is too short or too long.

    Raises:
        InputError: fewer than 10 or more than 256 characters (names ``password``).
    """
    if len(password) < MIN_PASSWORD:
        raise InputError(f"must have at least {MIN_PASSWORD} characters", where="password")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"must have at most {MAX_PASSWORD} characters", where="password")


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str | None = None,
    patient_id: int | None = None,
) -> UserRow:
    """Add an account (in the caller's transaction).

    Args:
        username: 3-64 characters, lower-case letters, digits, ``.``, ``_`` or ``-``.
        password: 10-256 characters; stored only as an Argon2id hash.
        role: coordinator, physician or patient.
        display_name: shown in the page header and on signatures; defaults to the username.
        patient_id: the record a patient account may see (required for, and only for, patients).

    Raises:
        InputError: bad username or password, a duplicate username, or a patient account without
            a record (or a staff account with one).
    """
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise InputError(
            "must be 3-64 characters: lower-case letters, digits, '.', '_' or '-'", where="username"
        )
    check_password_policy(password)
    if role is Role.PATIENT and patient_id is None:
        raise InputError("a patient account must be linked to a patient record", where="patient")
    if role is not Role.PATIENT and patient_id is not None:
        raise InputError("only patient accounts are linked to a patient record", where="patient")
    if session.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
        raise InputError(f"the username {name!r} is taken", where="username")
    row = UserRow(
        username=name,
        display_name=(display_name or name).strip()[:200] or name,
        role=role.value,
        password_hash=_hasher.hash(password),
        patient_id=patient_id,
        active=True,
        created_at=_now(),
    )
    session.add(row)
    session.flush()
    return row


def authenticate(session: Session, username: str, password: str) -> UserRow | None:
    """The active account with this username and password, or None (same cost either way)."""
    row = user_by_username(session, username)
    stored = row.password_hash if row is not None and row.active else _dummy_hash()
    try:
        _hasher.verify(stored, password[:MAX_PASSWORD])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or not row.active:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = _hasher.hash(password)
    row.last_login_at = _now()
    return row


def login_key(username: str) -> str:
    """What the audit log keeps of a username typed at sign-in: a short hash (it may be a name)."""
    return "u:" + _sha256(username.strip().lower()[:MAX_PASSWORD])[:16]


def too_many_failed_logins(session: Session, username: str) -> bool:
    """True when this username had ``FAILED_LOGIN_LIMIT`` failed sign-ins in the last 15 minutes."""
    since = _now() - FAILED_LOGIN_WINDOW
    count = session.scalar(
        select(func.count(AuditEventRow.id)).where(
            AuditEventRow.action == "login",
            AuditEventRow.outcome == "failed",
            AuditEventRow.resource_id == login_key(username),
            AuditEventRow.at >= since,
        )
    )
    return (count or 0) >= FAILED_LOGIN_LIMIT


def start_session(session: Session, user: UserRow, *, hours: int = SESSION_HOURS) -> str:
    """Open a login session for ``user``; returns the cookie token (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    now = _now()
    session.add(
        LoginSessionRow(
            token_sha256=_sha256(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + dt.timedelta(hours=hours),
        )
    )
    return token


def session_account(session: Session, token: str | None) -> Account | None:
    """The account behind a session cookie, or None if absent, unknown, expired or deactivated."""
    if not token or len(token) > 200:
        return None
    found = session.get(LoginSessionRow, _sha256(token))
    if found is None or _aware(found.expires_at) <= _now():
        return None
    user = session.get(UserRow, found.user_id)
    if user is None or not user.active:
        return None
    return Account(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=Role(user.role),
        patient_id=user.patient_id,
        csrf_token=found.csrf_token,
    )


def end_session(session: Session, token: str | None) -> None:
    """Sign out: forget the session (nothing happens for an unknown token)."""
    if token:
        found = session.get(LoginSessionRow, _sha256(token))
        if found is not None:
            session.delete(found)


def audit(
    session: Session,
    actor: Account | None,
    action: str,
    resource_type: str,
    resource_id: str | int | None = None,
    *,
    patient_id: int | None = None,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    """Append an audit event (who, what, when) in the caller's transaction.

    ``detail`` must not contain patient identifiers (names, dates of birth, record numbers).
    """
    session.add(
        AuditEventRow(
            at=_now(),
            user_id=actor.id if actor else None,
            role=actor.role.value if actor else None,
            action=action,
            resource_type=resource_type,
            resource_id=None if resource_id is None else str(resource_id),
            patient_id=patient_id,
            outcome=outcome,
            detail=detail,
        )
    )


def user_by_username(session: Session, username: str) -> UserRow | None:
    """The account with this username (any case), or None."""
    name = username.strip().lower()
    if not name or len(name) > 64 or not storable(name):
        return None
    return session.scalar(select(UserRow).where(UserRow.username == name))


def staff_accounts(session: Session) -> list[UserRow]:
    """Active care-team accounts (coordinators and physicians), by display name."""
    return list(
        session.scalars(
            select(UserRow)
            .where(UserRow.active.is_(True), UserRow.role != Role.PATIENT.value)
            .order_by(UserRow.display_name, UserRow.id)
        )
    )


def audit_events(
    session: Session,
    *,
    patient_id: int | None = None,
    user_id: int | None = None,
    action: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[AuditEventRow], int]:
    """Audit events matching every given filter, newest first: ``(page of rows, total count)``."""
    from sqlalchemy import func

    query = select(AuditEventRow)
    if patient_id is not None:
        query = query.where(AuditEventRow.patient_id == patient_id)
    if user_id is not None:
        query = query.where(AuditEventRow.user_id == user_id)
    if action and not storable(action):
        return [], 0
    if action:
        query = query.where(AuditEventRow.action == action)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEventRow.at.desc(), AuditEventRow.id.desc()).offset(offset).limit(limit)
    )
    return list(rows), total


def audit_actions(session: Session) -> list[str]:
    """The distinct actions in the audit log, sorted (for a filter menu)."""
    return sorted(session.scalars(select(AuditEventRow.action).distinct()))
