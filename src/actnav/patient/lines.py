"""Count lines of systemic therapy from a patient's therapy history.

The rule is data (``data/rules/lines-of-therapy.yaml``, after the IMWG definition of a line of
therapy, Rajkumar et al., Blood 2011): drugs started within the regimen window of a regimen's
first drug form one regimen; a later drug starts a new line when it is not part of the current
regimen, or when it starts after a documented relapse, progression or refractory status.
Continuation or maintenance with drugs already in the regimen is the same line. A line stated in
the record (the actnav line-of-therapy extension) is used as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache

from pydantic import BaseModel, ConfigDict

from actnav.patient.models import PatientRecord, TherapyExposure


class LineRule(BaseModel):
    """The parameters of the line-counting rule (``lines-of-therapy.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int
    version: str
    regimen_window_days: int
    new_line_on: tuple[str, ...]
    not_a_new_line: tuple[str, ...]
    source: dict[str, str]


@cache
def line_rule() -> LineRule:
    """Load the packaged line-counting rule once (raises DataFileError when invalid)."""
    from actnav.knowledge.loader import load_data

    return load_data(LineRule, "rules/lines-of-therapy.yaml")


@dataclass
class Line:
    """One line of therapy: its number, start date and the exposures in it."""

    number: int
    start: date | None
    therapies: list[TherapyExposure] = field(default_factory=list)

    @property
    def agents(self) -> set[str]:
        names: set[str] = set()
        for therapy in self.therapies:
            names.update(therapy.agents or (therapy.text.lower(),))
        return names

    @property
    def end(self) -> date | None:
        dates = [d for t in self.therapies for d in (t.end, t.start) if d is not None]
        return max(dates) if dates else None

    def describe(self) -> str:
        drugs = ", ".join(sorted(self.agents))
        when = f" from {self.start.isoformat()}" if self.start else ""
        return f"line {self.number}{when}: {drugs}"


@dataclass
class LineCount:
    """The lines found, and why the count may be uncertain.

    ``lines`` are in order. ``undated`` lists anticancer exposures with neither a date nor a
    stated line: when there are any, the count is a lower bound and reported as unknown.
    """

    lines: list[Line]
    undated: list[TherapyExposure]

    @property
    def certain(self) -> bool:
        return not self.undated


def count_lines(patient: PatientRecord, *, as_of: date, window_days: int | None = None) -> LineCount:
    """Group the patient's anticancer therapies started on or before ``as_of`` into lines.

    Args:
        patient: the record; only ``anticancer`` exposures count.
        as_of: the evaluation date; later exposures are ignored.
        window_days: the regimen window in days (default from the rule file).

    Returns:
        The lines in order and any undated exposures.
    """
    window = timedelta(days=window_days if window_days is not None else line_rule().regimen_window_days)
    therapies = [t for t in patient.therapies if t.anticancer and (t.start is None or t.start <= as_of)]
    stated = [t for t in therapies if t.line is not None]
    dated = sorted((t for t in therapies if t.line is None and t.start is not None), key=_start)
    undated = [t for t in therapies if t.line is None and t.start is None]

    breaks = sorted(
        e.date
        for e in patient.disease_status
        if e.date is not None and e.status in ("relapse", "progression", "refractory")
    )
    lines: list[Line] = []
    for therapy in dated:
        current = lines[-1] if lines else None
        assert therapy.start is not None
        if current is None or current.start is None:
            lines.append(Line(len(lines) + 1, therapy.start, [therapy]))
            continue
        within_window = therapy.start - current.start <= window
        progressed = any(current.start < b <= therapy.start for b in breaks)
        new_drug = not set(therapy.agents or (therapy.text.lower(),)) <= current.agents
        if within_window and not progressed:
            current.therapies.append(therapy)
        elif progressed or new_drug:
            lines.append(Line(len(lines) + 1, therapy.start, [therapy]))
        else:
            current.therapies.append(therapy)  # continuation or maintenance
    for therapy in stated:
        assert therapy.line is not None
        _place_stated(lines, therapy)
    lines.sort(key=lambda line: line.number)
    return LineCount(lines=lines, undated=undated)


def _start(therapy: TherapyExposure) -> date:
    assert therapy.start is not None
    return therapy.start


def _place_stated(lines: list[Line], therapy: TherapyExposure) -> None:
    """Put an exposure with a stated line number into that line (creating it if needed)."""
    assert therapy.line is not None
    for line in lines:
        if line.number == therapy.line:
            line.therapies.append(therapy)
            if therapy.start and (line.start is None or therapy.start < line.start):
                line.start = therapy.start
            return
    lines.append(Line(therapy.line, therapy.start, [therapy]))
