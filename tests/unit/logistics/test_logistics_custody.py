"""The custody hash chain on its own: SHA-256 over canonical JSON of each entry plus the previous
hash; verification names the first entry whose sequence, link or hash is broken."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from actnav.logistics.custody import GENESIS, NEXT, Entry, canonical_json, entry_hash, verify_entries


def chain(n: int) -> list[Entry]:
    entries: list[Entry] = []
    previous = GENESIS
    events = ["collected", "labelled", "shipped", "received", "stored", "thawed", "infused"]
    for seq in range(1, n + 1):
        entry = Entry(
            seq=seq,
            din="G1234260000014",
            case_ref="CASE-1",
            event=events[(seq - 1) % len(events)],
            at=f"2026-02-{seq:02d}T09:00:00+00:00",
            recorded_at=f"2026-02-{seq:02d}T09:05:00+00:00",
            actor="nurse.k",
            location=None,
            details=canonical_json({"n": seq}),
            prev_hash=previous,
            entry_hash="",
        )
        entry = replace(entry, entry_hash=entry_hash(entry.content()))
        entries.append(entry)
        previous = entry.entry_hash
    return entries


def head(entries: list[Entry]) -> tuple[int, str]:
    return entries[-1].seq, entries[-1].entry_hash


def test_the_hash_is_sha256_of_sorted_compact_json() -> None:
    content = {"b": 1, "a": "é"}
    assert canonical_json(content) == '{"a":"é","b":1}'
    assert entry_hash(content) == hashlib.sha256('{"a":"é","b":1}'.encode()).hexdigest()


def test_an_untouched_chain_is_intact() -> None:
    entries = chain(6)
    report = verify_entries(reversed(entries), head(entries))
    assert report.intact and report.entries == 6 and report.head_seq == 6


def test_an_empty_log_without_head_is_intact() -> None:
    assert verify_entries([], None).intact


def test_an_edited_entry_is_named() -> None:
    entries = chain(6)
    entries[2] = replace(entries[2], location="somewhere else")
    report = verify_entries(entries, head(entries))
    assert (report.status, report.first_broken_seq) == ("broken", 3)
    assert "edited" in (report.problem or "")


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() -> None:
    entries = chain(6)
    forged = replace(entries[2], event="stored")
    entries[2] = replace(forged, entry_hash=entry_hash(forged.content()))
    report = verify_entries(entries, head(entries))
    assert report.first_broken_seq == 4
    assert "link" in (report.problem or "")


def test_a_deleted_entry_shows_as_a_sequence_gap() -> None:
    entries = chain(6)
    report = verify_entries(entries[:3] + entries[4:], head(entries))
    assert report.first_broken_seq == 4
    assert "missing" in (report.problem or "")


def test_a_deleted_first_entry_is_named() -> None:
    entries = chain(3)
    assert verify_entries(entries[1:], head(entries)).first_broken_seq == 1


def test_a_deleted_newest_entry_is_found_through_the_head() -> None:
    entries = chain(6)
    report = verify_entries(entries[:5], head(entries))
    assert report.first_broken_seq == 6


def test_an_entry_added_behind_the_api_is_found_through_the_head() -> None:
    entries = chain(6)
    report = verify_entries(entries, head(entries[:5]))
    assert report.first_broken_seq == 6


def test_renumbered_entries_after_a_deletion_break_the_link() -> None:
    entries = chain(5)
    renumbered = [entries[0], entries[1], *(replace(e, seq=e.seq - 1) for e in entries[3:])]
    assert verify_entries(renumbered, head(entries)).first_broken_seq == 3


def test_custody_events_follow_each_other_in_order() -> None:
    assert NEXT[None] == frozenset({"collected"})
    assert NEXT["thawed"] == frozenset({"infused"})
    assert NEXT["infused"] == frozenset()
    assert "shipped" in NEXT["received"]  # the cells go to manufacturing and come back
