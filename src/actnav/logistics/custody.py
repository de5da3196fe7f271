"""Chain of custody: event types, the order they may follow, and the hash chain that makes the log
tamper-evident.

Every custody event (``collected``, ``labelled``, ``shipped``, ``received``, ``stored``, ``thawed``,
``infused``) is one entry of a single append-only log. Entry ``n`` stores

* its content: sequence number, DIN, case reference, event, when it happened, when it was recorded,
  who recorded it, where, details;
* ``prev_hash``: the hash of entry ``n - 1`` (64 zeros for the first entry);
* ``entry_hash``: SHA-256 of the canonical JSON of the content together with ``prev_hash``
  (keys sorted, no spaces, UTF-8; times as ISO 8601 text in UTC).

:func:`verify_entries` walks the log in sequence order and reports the first entry whose sequence
number is not the next one (a deleted entry), whose ``prev_hash`` is not the previous entry's hash
(a deleted or replaced entry), or whose recomputed hash differs from the stored one (an edited
entry). The last entry is compared with the stored chain head, so deleting the newest entry is
found too. The log has no update or delete function; the database is written only by appending.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

EVENTS: tuple[str, ...] = ("collected", "labelled", "shipped", "received", "stored", "thawed", "infused")
GENESIS = "0" * 64

# What may follow each event for one DIN (None: the first event). A product leaves for
# manufacturing and comes back, so shipped/received repeat.
NEXT: dict[str | None, frozenset[str]] = {
    None: frozenset({"collected"}),
    "collected": frozenset({"labelled"}),
    "labelled": frozenset({"shipped", "stored"}),
    "shipped": frozenset({"received"}),
    "received": frozenset({"labelled", "stored", "shipped", "thawed"}),
    "stored": frozenset({"shipped", "thawed", "labelled"}),
    "thawed": frozenset({"infused"}),
    "infused": frozenset(),
}


@dataclass(frozen=True)
class Entry:
    """One custody log entry as stored."""

    seq: int
    din: str
    case_ref: str
    event: str
    at: str
    recorded_at: str
    actor: str
    location: str | None
    details: str  # canonical JSON text
    prev_hash: str
    entry_hash: str

    def content(self) -> dict[str, Any]:
        """The hashed content (everything but ``entry_hash``)."""
        return {
            "seq": self.seq,
            "din": self.din,
            "case_ref": self.case_ref,
            "event": self.event,
            "at": self.at,
            "recorded_at": self.recorded_at,
            "actor": self.actor,
            "location": self.location,
            "details": self.details,
            "prev_hash": self.prev_hash,
        }


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant spaces (the form that is hashed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(content: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of an entry's content."""
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def allowed_next(previous: str | None) -> frozenset[str]:
    """The events that may follow ``previous`` for the same DIN."""
    return NEXT[previous]


@dataclass(frozen=True)
class ChainReport:
    """The result of verifying the custody log.

    ``status`` is ``intact`` or ``broken``; for a broken log ``first_broken_seq`` names the first
    entry at fault (for a deleted newest entry: the sequence the head says should exist) and
    ``problem`` says what is wrong with it.
    """

    status: Literal["intact", "broken"]
    entries: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.status == "intact"


def verify_entries(entries: Iterable[Entry], head: tuple[int, str] | None) -> ChainReport:
    """Check the hash chain of custody entries.

    Args:
        entries: every entry of the log (any order; sorted by ``seq`` here).
        head: the stored chain head ``(last seq, last hash)``, or None when nothing was appended.

    Returns:
        :class:`ChainReport` naming the first broken entry, if any.
    """
    ordered: Sequence[Entry] = sorted(entries, key=lambda e: e.seq)
    expected_seq, previous = 1, GENESIS
    for entry in ordered:
        if entry.seq != expected_seq:
            missing = (
                f"{expected_seq}" if entry.seq == expected_seq + 1 else f"{expected_seq} to {entry.seq - 1}"
            )
            return _broken(
                ordered, head, expected_seq, f"entry {missing} is missing (sequence gap before {entry.seq})"
            )
        if entry.prev_hash != previous:
            return _broken(
                ordered, head, entry.seq, "its link to the previous entry is broken (prev_hash differs)"
            )
        if entry_hash(entry.content()) != entry.entry_hash:
            return _broken(ordered, head, entry.seq, "its content does not match its stored hash (edited)")
        previous, expected_seq = entry.entry_hash, expected_seq + 1
    last_seq = expected_seq - 1
    head_seq, head_hash = head if head is not None else (0, GENESIS)
    if head_seq != last_seq:
        if head_seq > last_seq:
            return _broken(
                ordered,
                head,
                last_seq + 1,
                f"the chain head records {head_seq} entries; entries after {last_seq} are missing",
            )
        return _broken(
            ordered,
            head,
            head_seq + 1,
            f"entries after the chain head ({head_seq}) were not appended through actnav",
        )
    if head_hash != previous:
        return _broken(ordered, head, last_seq, "the newest entry's hash differs from the chain head")
    return ChainReport(status="intact", entries=len(ordered), head_seq=head_seq, head_hash=head_hash)


def _broken(ordered: Sequence[Entry], head: tuple[int, str] | None, seq: int, problem: str) -> ChainReport:
    head_seq, head_hash = head if head is not None else (0, GENESIS)
    return ChainReport(
        status="broken",
        entries=len(ordered),
        head_seq=head_seq,
        head_hash=head_hash,
        first_broken_seq=seq,
        problem=problem,
    )
