"""Patient facts for the criterion engine: one resolver per fact id of ``facts.yaml``.

:class:`PatientFacts` computes each fact once per evaluation from a :class:`PatientRecord` and
the evaluation date, returning a :class:`FactValue` with its evidence, or ``value=None`` and a
reason when it is unknown (missing, stale, unresolved). Absence is read as "not received" only
where the record says the history was taken (a recorded treatment history); otherwise unknown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date
from functools import cache

from pydantic import BaseModel, ConfigDict

from actnav.eligibility.engine import Evidence, FactValue
from actnav.knowledge.models import FactDefinition
from actnav.patient.lines import LineCount, count_lines
from actnav.patient.models import (
    DiseaseStatusEvent,
    Finding,
    Measurement,
    PatientRecord,
    TherapyExposure,
)

Resolver = Callable[["PatientFacts"], FactValue]
RESOLVERS: dict[str, Resolver] = {}


def resolver(*fact_ids: str) -> Callable[[Resolver], Resolver]:
    def register(func: Resolver) -> Resolver:
        for fact_id in fact_ids:
            RESOLVERS[fact_id] = func
        return func

    return register


def age_in_years(birth: date, on: date) -> int:
    """Completed years from ``birth`` to ``on`` (a 25-year-old is 25 until the 26th birthday)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def whole_months(start: date, end: date) -> int:
    """Completed calendar months from ``start`` to ``end``."""
    return (end.year - start.year) * 12 + end.month - start.month - (end.day < start.day)


class PatientFacts:
    """Resolves facts for one patient on one date, caching each.

    Args:
        patient: the record.
        as_of: the evaluation date; nothing later is used and currency windows end here.
        definitions: the fact catalogue (``facts.yaml``), for units and currency windows.
    """

    def __init__(self, patient: PatientRecord, as_of: date, definitions: dict[str, FactDefinition]):
        self.patient = patient
        self.as_of = as_of
        self.definitions = definitions
        self._cache: dict[str, FactValue] = {}
        self._lines: LineCount | None = None

    def __call__(self, fact_id: str) -> FactValue:
        if fact_id not in self._cache:
            self._cache[fact_id] = (
                RESOLVERS[fact_id](self) if fact_id in RESOLVERS else self._measure(fact_id)
            )
        return self._cache[fact_id]

    # -- helpers -------------------------------------------------------------------------

    @property
    def lines(self) -> LineCount:
        if self._lines is None:
            self._lines = count_lines(self.patient, as_of=self.as_of)
        return self._lines

    def unknown(self, fact_id: str, reason: str, evidence: Iterable[Evidence] = ()) -> FactValue:
        return FactValue(fact=fact_id, reason=reason, evidence=tuple(evidence))

    def known(
        self, fact_id: str, value: float | str | bool | tuple[str, ...], evidence: Iterable[Evidence]
    ) -> FactValue:
        return FactValue(fact=fact_id, value=value, evidence=tuple(evidence))

    def latest(self, items: Iterable[Measurement]) -> Measurement | None:
        dated = [m for m in items if m.date is not None and m.date <= self.as_of]
        return max(dated, key=lambda m: m.date or date.min) if dated else None

    def stale(self, fact_id: str, when: date | None) -> int | None:
        """Age in days if older than the fact's currency window, else None."""
        window = self.definitions[fact_id].max_age_days
        if window is None or when is None:
            return None
        age = (self.as_of - when).days
        return age if age > window else None

    def _measure(self, fact_id: str) -> FactValue:
        """A lab or vital fact: the latest measurement of that key within its window."""
        definition = self.definitions[fact_id]
        return self.measurement_fact(fact_id, fact_id, definition.description)

    def measurement_fact(self, fact_id: str, key: str, label: str) -> FactValue:
        found = self.latest(m for m in self.patient.measurements if m.key == key)
        window = self.definitions[fact_id].max_age_days
        within = f" within {window} days" if window else ""
        if found is None:
            return self.unknown(fact_id, f"{label.rstrip('.').lower()}{within}")
        ev = _measurement_evidence(found)
        age = self.stale(fact_id, found.date)
        if age is not None:
            return self.unknown(
                fact_id,
                f"a current {label.rstrip('.').lower()} (last result is {age} days old; window {window} days)",
                [ev],
            )
        return self.known(fact_id, found.value, [ev])

    def latest_finding(self, fact_id: str, key: str) -> Finding | None:
        items = [
            f for f in self.patient.findings if f.key == key and (f.date is None or f.date <= self.as_of)
        ]
        if not items:
            return None
        return max(items, key=lambda f: f.date or date.min)

    def finding_fact(self, fact_id: str, key: str, label: str) -> FactValue:
        found = self.latest_finding(fact_id, key)
        if found is None:
            return self.unknown(fact_id, label)
        ev = Evidence(
            resource=found.resource, value=found.value, date=_iso(found.date), note=found.detail or None
        )
        if found.value == "indeterminate":
            return self.unknown(fact_id, f"{label} (last result indeterminate)", [ev])
        age = self.stale(fact_id, found.date)
        if age is not None:
            return self.unknown(fact_id, f"a current {label} (last result is {age} days old)", [ev])
        return self.known(fact_id, found.value, [ev])

    def concepts(self) -> set[str]:
        return {c for d in self.patient.diagnoses for c in d.concepts}

    def status_events(self) -> list[DiseaseStatusEvent]:
        return [e for e in self.patient.disease_status if e.date is None or e.date <= self.as_of]


def _iso(when: date | None) -> str | None:
    return when.isoformat() if when else None


def _measurement_evidence(m: Measurement) -> Evidence:
    note = f"as recorded: {m.original}"
    if m.upper_limit_normal is not None:
        note += f"; upper limit of normal {m.upper_limit_normal:g} {m.unit}"
    return Evidence(resource=m.resource, value=round(m.value, 4), unit=m.unit, date=_iso(m.date), note=note)


def _therapy_evidence(t: TherapyExposure, note: str | None = None) -> Evidence:
    return Evidence(
        resource=t.resource, value=t.text, date=_iso(t.start), note=note or (", ".join(t.classes) or None)
    )


def _event_evidence(e: DiseaseStatusEvent) -> Evidence:
    return Evidence(
        resource=e.resource, value=e.status, date=_iso(e.date), note=f"about {e.focus}" if e.focus else None
    )


# -- demographics --------------------------------------------------------------------------


@resolver("age_years")
def _age(f: PatientFacts) -> FactValue:
    p = f.patient
    age = age_in_years(p.birth_date, f.as_of)
    ev = Evidence(
        resource=f"Patient/{p.id}",
        value=age,
        unit="a",
        note=f"born {p.birth_date.isoformat()}, age on {f.as_of.isoformat()}",
    )
    return f.known("age_years", float(age), [ev])


@resolver("sex")
def _sex(f: PatientFacts) -> FactValue:
    p = f.patient
    if p.sex == "unknown":
        return f.unknown("sex", "the patient's sex (Patient.gender)")
    return f.known("sex", p.sex, [Evidence(resource=f"Patient/{p.id}", value=p.sex)])


# -- diagnosis and disease course ----------------------------------------------------------


@resolver("diagnosis")
def _diagnosis(f: PatientFacts) -> FactValue:
    diagnoses = f.patient.diagnoses
    if not diagnoses:
        return f.unknown("diagnosis", "a confirmed cancer diagnosis (Condition)")
    evidence = [
        Evidence(
            resource=d.resource,
            value=d.text,
            date=_iso(d.onset),
            note=", ".join(d.concepts[:1]) or "not a disease the rules know",
        )
        for d in diagnoses
    ]
    present = f.concepts()
    possible = _possible_subtypes(present)
    if not possible:
        return f.known("diagnosis", tuple(sorted(present)), evidence)
    # A diagnosis that does not state its subtype (ALL of unstated lineage): every other concept
    # is known absent, its subtypes are untested, so a criterion needing one is unknown.
    tested = tuple(sorted(_all_concepts() - possible))
    reason = "a pathology report that states the subtype (" + ", ".join(sorted(possible)) + ")"
    return FactValue(
        fact="diagnosis", value=tuple(sorted(present)), evidence=tuple(evidence), reason=reason, tested=tested
    )


@cache
def _all_concepts() -> frozenset[str]:
    from actnav.patient import terminology

    return frozenset(c.id for c in terminology.diagnoses().concepts)


@cache
def _descendants() -> dict[str, frozenset[str]]:
    from actnav.patient import terminology

    children: dict[str, set[str]] = {}
    for concept in terminology.diagnoses().concepts:
        for parent in concept.parents:
            children.setdefault(parent, set()).add(concept.id)
    out: dict[str, frozenset[str]] = {}
    for concept_id in _all_concepts():
        seen: set[str] = set()
        queue = list(children.get(concept_id, ()))
        while queue:
            node = queue.pop()
            if node not in seen:
                seen.add(node)
                queue.extend(children.get(node, ()))
        out[concept_id] = frozenset(seen)
    return out


def _possible_subtypes(present: set[str]) -> frozenset[str]:
    """Subtypes of the patient's unspecific diagnoses (``rules/diagnosis-specificity.yaml``)."""
    unspecific = diagnosis_specificity()
    descendants = _descendants()
    possible: set[str] = set()
    for concept in present:
        below = descendants.get(concept, frozenset())
        if concept in unspecific and not (below & present):  # no subtype stated
            possible |= below
    return frozenset(possible - present)


class DiagnosisSpecificity(BaseModel):
    """``rules/diagnosis-specificity.yaml``: concepts whose subtypes stay possible."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int
    version: str
    source: dict[str, str]
    unspecified: dict[str, str]


@cache
def diagnosis_specificity() -> dict[str, str]:
    """Unspecific diagnosis concepts -> why their subtypes stay possible (raises DataFileError)."""
    from actnav.knowledge.loader import load_data

    return load_data(DiagnosisSpecificity, "rules/diagnosis-specificity.yaml").unspecified


@resolver("relapsed_or_refractory")
def _relapsed_or_refractory(f: PatientFacts) -> FactValue:
    events = f.status_events()
    bad = [e for e in events if e.status in ("relapse", "refractory", "progression")]
    coded = [d for d in f.patient.diagnoses if d.in_relapse or d.clinical_status in ("relapse", "recurrence")]
    if bad or coded:
        ev = [_event_evidence(e) for e in bad] + [
            Evidence(resource=d.resource, value=d.text, note="coded as relapse or recurrence") for d in coded
        ]
        return f.known("relapsed_or_refractory", True, ev)
    if events:
        return f.known("relapsed_or_refractory", False, [_event_evidence(e) for e in events])
    return f.unknown("relapsed_or_refractory", "the disease course (relapse or refractory status with dates)")


@resolver("refractory")
def _refractory(f: PatientFacts) -> FactValue:
    events = f.status_events()
    refractory = [e for e in events if e.status == "refractory"]
    if refractory:
        return f.known("refractory", True, [_event_evidence(e) for e in refractory])
    if events:
        note = f"no refractory status among {len(events)} disease-status observations"
        return f.known("refractory", False, [Evidence(note=note)])
    return f.unknown("refractory", "the disease course (response to each line; refractory or not)")


@resolver("relapse_count")
def _relapse_count(f: PatientFacts) -> FactValue:
    """Relapse episodes: dated relapse observations, where two count as two relapses only when a
    documented response or remission, or the start of a new line of therapy, lies between them
    (the same relapse confirmed twice, by marrow then flow cytometry, is one relapse)."""
    events = f.status_events()
    relapses = sorted({e.date for e in events if e.status == "relapse" and e.date is not None})
    undated = [e for e in events if e.status == "relapse" and e.date is None]
    if undated:
        return f.unknown("relapse_count", "the date of every relapse", [_event_evidence(e) for e in undated])
    if not events:
        return f.unknown("relapse_count", "the disease course (dates of each relapse)")
    separators = sorted(
        {e.date for e in events if e.status in ("response", "complete_remission") and e.date is not None}
        | {line.start for line in f.lines.lines if line.start is not None}
    )
    episodes = 0
    previous: date | None = None
    for when in relapses:
        if previous is None or any(previous < s < when for s in separators):
            episodes += 1
        previous = when
    ev = [_event_evidence(e) for e in events if e.status == "relapse"]
    if not ev:
        ev = [Evidence(note=f"no relapse among {len(events)} disease-status observations")]
    elif episodes < len(relapses):
        ev.append(
            Evidence(
                value=episodes,
                note=f"{len(relapses)} relapse observations without remission or new therapy "
                f"between some of them: {episodes} relapse(s)",
            )
        )
    return f.known("relapse_count", float(episodes), ev)


@resolver("refractory_to_first_line")
def _refractory_first(f: PatientFacts) -> FactValue:
    lines = f.lines.lines
    events = f.status_events()
    if not lines or not events:
        return f.unknown("refractory_to_first_line", "the response to first-line therapy")
    first = lines[0]
    second_start = lines[1].start if len(lines) > 1 else None
    first_ids = {t.resource for t in first.therapies}
    for e in events:
        if e.status != "refractory":
            continue
        in_window = (
            e.date is not None
            and first.start is not None
            and first.start <= e.date
            and (second_start is None or e.date < second_start)
        )
        if (e.focus and e.focus in first_ids) or (not e.focus and in_window):
            return f.known(
                "refractory_to_first_line", True, [_event_evidence(e), Evidence(note=first.describe())]
            )
    return f.known(
        "refractory_to_first_line", False, [Evidence(note=f"no refractory status during {first.describe()}")]
    )


@resolver("relapse_within_12_months_of_first_line")
def _early_relapse(f: PatientFacts) -> FactValue:
    fact = "relapse_within_12_months_of_first_line"
    lines = f.lines.lines
    events = [e for e in f.status_events() if e.status in ("relapse", "progression") and e.date is not None]
    if not lines or not events:
        return f.unknown(fact, "the end date of first-line therapy and the date of first relapse")
    first = lines[0]
    end = first.end
    if end is None:
        return f.unknown(fact, "the end date of first-line therapy")
    after = sorted(
        (e for e in events if e.date is not None and e.date >= end), key=lambda e: e.date or date.min
    )
    if not after:
        return f.known(fact, False, [Evidence(note=f"no relapse after {first.describe()}")])
    relapse = after[0]
    assert relapse.date is not None
    months = whole_months(end, relapse.date)
    ev = [
        _event_evidence(relapse),
        Evidence(value=months, unit="mo", note=f"{first.describe()}, ended {end.isoformat()}"),
    ]
    return f.known(fact, months < 12 or (months == 12 and relapse.date <= _add_months(end, 12)), ev)


def _add_months(start: date, months: int) -> date:
    year, month = divmod(start.month - 1 + months, 12)
    day = min(start.day, 28)
    return date(start.year + year, month + 1, day)


@resolver("cns_involvement")
def _cns(f: PatientFacts) -> FactValue:
    hits = [d for d in f.patient.diagnoses if {"cns_involvement", "primary_cns_lymphoma"} & set(d.concepts)]
    if hits:
        return f.known("cns_involvement", True, [Evidence(resource=d.resource, value=d.text) for d in hits])
    found = f.latest_finding("cns_involvement", "cns_involvement")
    if found is not None:
        return f.known(
            "cns_involvement",
            found.value == "positive",
            [Evidence(resource=found.resource, value=found.value, date=_iso(found.date))],
        )
    return f.unknown("cns_involvement", "an assessment of central nervous system involvement")


@resolver("metastatic_or_unresectable")
def _metastatic(f: PatientFacts) -> FactValue:
    hits = [d for d in f.patient.diagnoses if "metastatic_disease" in d.concepts]
    if hits:
        return f.known(
            "metastatic_or_unresectable",
            True,
            [Evidence(resource=d.resource, value=d.text, date=_iso(d.onset)) for d in hits],
        )
    found = f.latest_finding("metastatic_or_unresectable", "metastatic_or_unresectable")
    if found is not None and found.value != "indeterminate":
        return f.known(
            "metastatic_or_unresectable",
            found.value == "positive",
            [Evidence(resource=found.resource, value=found.value, date=_iso(found.date))],
        )
    return f.unknown("metastatic_or_unresectable", "staging that shows metastatic or unresectable disease")


# -- treatment history ---------------------------------------------------------------------


def _history_unknown(f: PatientFacts, fact: str) -> FactValue:
    return f.unknown(fact, "the treatment history (systemic therapies with dates)")


@resolver("prior_lines")
def _prior_lines(f: PatientFacts) -> FactValue:
    if not f.patient.treatment_history_recorded:
        return _history_unknown(f, "prior_lines")
    counted = f.lines
    ev = [Evidence(note=line.describe()) for line in counted.lines]
    ev += _unrecognised_evidence(f)
    if not counted.certain:
        names = ", ".join(t.text for t in counted.undated)
        return f.unknown("prior_lines", f"start dates or line numbers for: {names}", ev)
    regimen_like = [t.text for t in _unrecognised(f) if _REGIMEN_LIKE.fullmatch(t.text.strip())]
    if regimen_like:
        # An unrecognised name shaped like a regimen acronym may be a whole line of therapy.
        names = ", ".join(regimen_like)
        return f.unknown("prior_lines", f"whether {names} was anticancer therapy (name not recognised)", ev)
    total = Evidence(value=len(counted.lines), unit="lines", note="counted by the documented line rule")
    return f.known("prior_lines", float(len(counted.lines)), [total, *ev])


# Two or more short tokens joined by - + / or space, with at least two capitals: "DA-EPOCH-R",
# "Pola-BR", "XYZ-123 + R". Drug names with doses ("Acetaminophen 325 MG Oral Tablet") do not fit.
_REGIMEN_LIKE = re.compile(r"(?=(?:.*[A-Z]){2})[A-Za-z0-9]{1,8}(?:\s*[-+/]\s*[A-Za-z0-9]{1,8}){1,5}")


def _unrecognised(f: PatientFacts) -> list[TherapyExposure]:
    return [t for t in f.patient.therapies if t.unrecognised and (t.start is None or t.start <= f.as_of)]


def _unrecognised_evidence(f: PatientFacts) -> list[Evidence]:
    names = sorted({t.text for t in _unrecognised(f)})
    if not names:
        return []
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return [Evidence(note=f"medications not recognised (not counted; check if any was anticancer): {shown}")]


@resolver("prior_drug_classes")
def _classes(f: PatientFacts) -> FactValue:
    return _exposure_set(f, "prior_drug_classes", lambda t: t.classes)


@resolver("prior_agents")
def _agents(f: PatientFacts) -> FactValue:
    return _exposure_set(f, "prior_agents", lambda t: t.agents)


def _exposure_set(f: PatientFacts, fact: str, pick: Callable[[TherapyExposure], Iterable[str]]) -> FactValue:
    if not f.patient.treatment_history_recorded:
        return _history_unknown(f, fact)
    given = [t for t in f.patient.therapies if t.start is None or t.start <= f.as_of]
    values = sorted({v for t in given for v in pick(t)})
    ev = [_therapy_evidence(t) for t in given if t.anticancer]
    ev.append(Evidence(note="read from the recorded treatment history, taken as complete"))
    ev += _unrecognised_evidence(f)
    return f.known(fact, tuple(values), ev)


@resolver("refractory_to")
def _refractory_to(f: PatientFacts) -> FactValue:
    if not f.patient.treatment_history_recorded:
        return _history_unknown(f, "refractory_to")
    events = f.status_events()
    if not events:
        return f.unknown(
            "refractory_to", "the response to each line (which drugs the disease is refractory to)"
        )
    by_id = {t.resource: t for t in f.patient.therapies}
    values: set[str] = set()
    ev: list[Evidence] = []
    for e in events:
        if e.status != "refractory":
            continue
        if e.focus and e.focus in by_id:
            targets = [by_id[e.focus]]
        else:
            started = [
                line
                for line in f.lines.lines
                if line.start is not None and e.date is not None and line.start <= e.date
            ]
            targets = started[-1].therapies if started else []
        for t in targets:
            values.update(t.agents)
            values.update(t.classes)
            ev.append(_therapy_evidence(t, note=f"refractory per {e.resource}"))
    if not ev:
        ev.append(Evidence(note=f"no refractory status among {len(events)} disease-status observations"))
    return f.known("refractory_to", tuple(sorted(values)), ev)


@resolver("prior_transplant")
def _transplants(f: PatientFacts) -> FactValue:
    done = [t for t in f.patient.transplants if t.date is None or t.date <= f.as_of]
    if not done and not f.patient.treatment_history_recorded:
        return _history_unknown(f, "prior_transplant")
    ev = [Evidence(resource=t.resource, value=t.type, date=_iso(t.date)) for t in done] or [
        Evidence(note="no transplant in the recorded history")
    ]
    return f.known("prior_transplant", tuple(sorted({t.type for t in done})), ev)


@resolver("months_since_allogeneic_transplant")
def _months_since_allo(f: PatientFacts) -> FactValue:
    fact = "months_since_allogeneic_transplant"
    allo = [
        t for t in f.patient.transplants if t.type == "allogeneic" and (t.date is None or t.date <= f.as_of)
    ]
    if not allo:
        return f.unknown(fact, "the date of an allogeneic transplant (none recorded)")
    dated = [t for t in allo if t.date is not None]
    if len(dated) < len(allo):
        return f.unknown(fact, "the date of the allogeneic transplant")
    last = max(dated, key=lambda t: t.date or date.min)
    assert last.date is not None
    months = whole_months(last.date, f.as_of)
    return f.known(
        fact, float(months), [Evidence(resource=last.resource, value=months, unit="mo", date=_iso(last.date))]
    )


@resolver("transplant_ineligible")
def _transplant_ineligible(f: PatientFacts) -> FactValue:
    found = f.latest_finding("transplant_ineligible", "transplant_ineligible")
    if found is None or found.value == "indeterminate":
        return f.unknown("transplant_ineligible", "the physician's assessment of transplant eligibility")
    return f.known(
        "transplant_ineligible",
        found.value == "positive",
        [Evidence(resource=found.resource, value=found.value, date=_iso(found.date))],
    )


# -- biomarkers ----------------------------------------------------------------------------


@resolver("hla_a_p_groups")
def _hla(f: PatientFacts) -> FactValue:
    alleles = [a for a in f.patient.hla if a.locus == "A" and (a.date is None or a.date <= f.as_of)]
    if not alleles:
        return f.unknown("hla_a_p_groups", "high-resolution HLA-A typing")
    ev = [
        Evidence(
            resource=a.resource,
            value=a.written,
            note=a.p_group
            or (
                "in no HLA-A*02 P group the rules list"
                if a.p_group_known_absent
                else "P group not determined"
            ),
        )
        for a in alleles
    ]
    unresolved = [a for a in alleles if a.p_group is None and not a.p_group_known_absent]
    if unresolved:
        names = ", ".join(a.written for a in unresolved)
        return f.unknown(
            "hla_a_p_groups", f"HLA-A typing at P-group level (two or more fields) for {names}", ev
        )
    return f.known("hla_a_p_groups", tuple(sorted({a.p_group for a in alleles if a.p_group})), ev)


@resolver("braf_v600")
def _braf(f: PatientFacts) -> FactValue:
    return f.finding_fact("braf_v600", "braf_v600", "a tumour BRAF V600 mutation test")


@resolver("mage_a4")
def _mage(f: PatientFacts) -> FactValue:
    return f.finding_fact("mage_a4", "mage_a4", "MAGE-A4 immunohistochemistry of the tumour")


# -- fitness -------------------------------------------------------------------------------


def _make_x_uln(fact: str, key: str, label: str) -> Resolver:
    def resolve(f: PatientFacts) -> FactValue:
        base = f.measurement_fact(fact, key, label)
        if not base.known:
            return base
        found = f.latest(m for m in f.patient.measurements if m.key == key)
        assert found is not None and isinstance(base.value, float)
        if not found.upper_limit_normal:
            return f.unknown(fact, f"the laboratory's upper limit of normal for {label}", base.evidence)
        ratio = base.value / found.upper_limit_normal
        ev = [
            *base.evidence,
            Evidence(
                value=round(ratio, 2), unit="{xULN}", note=f"{base.value:g} / {found.upper_limit_normal:g}"
            ),
        ]
        return f.known(fact, ratio, ev)

    return resolve


RESOLVERS["alt_x_uln"] = _make_x_uln("alt_x_uln", "alt", "ALT")
RESOLVERS["ast_x_uln"] = _make_x_uln("ast_x_uln", "ast", "AST")


@resolver("active_infection")
def _infection(f: PatientFacts) -> FactValue:
    hits = [d for d in f.patient.diagnoses if "active_infection" in d.concepts]
    if hits:
        return f.known("active_infection", True, [Evidence(resource=d.resource, value=d.text) for d in hits])
    found = f.latest_finding("active_infection", "active_infection")
    if found is not None and found.value != "indeterminate":
        return f.known(
            "active_infection",
            found.value == "positive",
            [Evidence(resource=found.resource, value=found.value, date=_iso(found.date))],
        )
    return f.unknown("active_infection", "an assessment for active infection")


def _make_virus(fact: str, concept: str, label: str) -> Resolver:
    def resolve(f: PatientFacts) -> FactValue:
        hits = [d for d in f.patient.diagnoses if concept in d.concepts]
        if hits:
            return f.known(fact, "positive", [Evidence(resource=d.resource, value=d.text) for d in hits])
        return f.finding_fact(fact, fact, label)

    return resolve


RESOLVERS["hiv"] = _make_virus("hiv", "hiv_infection", "HIV screening")
RESOLVERS["hbv"] = _make_virus("hbv", "hbv_infection", "hepatitis B screening")
RESOLVERS["hcv"] = _make_virus("hcv", "hcv_infection", "hepatitis C screening")


# -- trial criteria ------------------------------------------------------------------------
# Facts that trial eligibility criteria name (merged from data/trials/trial-facts.yaml).


@resolver("needs_review")
def _needs_review(f: PatientFacts) -> FactValue:
    # Never resolvable: the leaf's remarks ("needs review: <criterion text>") say what to read;
    # the engine shows them as what the unknown needs.
    return f.unknown("needs_review", "review of the criterion's text by the trial team")


RESOLVERS["bilirubin_x_uln"] = _make_x_uln("bilirubin_x_uln", "bilirubin", "total bilirubin")
RESOLVERS["creatinine_x_uln"] = _make_x_uln("creatinine_x_uln", "creatinine", "serum creatinine")


@resolver("karnofsky")
def _karnofsky(f: PatientFacts) -> FactValue:
    return f.measurement_fact("karnofsky", "karnofsky", "Karnofsky performance status")


@resolver("lansky")
def _lansky(f: PatientFacts) -> FactValue:
    # No LOINC code for the Lansky play-performance scale is mapped yet: only a measurement with
    # key "lansky" (from another importer) settles it.
    return f.measurement_fact("lansky", "lansky", "Lansky play-performance status")


@resolver("egfr")
def _egfr(f: PatientFacts) -> FactValue:
    return f.measurement_fact("egfr", "egfr", "eGFR (mL/min/1.73 m2)")


@resolver("life_expectancy_months")
def _life_expectancy(f: PatientFacts) -> FactValue:
    # Not read from FHIR (no standard code); a measurement with this key settles it.
    return f.measurement_fact(
        "life_expectancy_months", "life_expectancy_months", "Treating physician's estimate of life expectancy"
    )


def _male(f: PatientFacts, fact: str, what: str) -> FactValue | None:
    p = f.patient
    if p.sex == "male":
        ev = Evidence(resource=f"Patient/{p.id}", value="male", note=f"recorded male: {what}")
        return f.known(fact, False, [ev])
    return None


def _flag_from_conditions_and_findings(
    f: PatientFacts, fact: str, concept: str, key: str, label: str
) -> FactValue:
    """A yes/no fact from a Condition (concept present: yes) and an assessment Observation
    (finding positive/negative); the more recent of the two wins. Unknown without either."""
    hits = [
        d for d in f.patient.diagnoses if concept in d.concepts and (d.onset is None or d.onset <= f.as_of)
    ]
    found = f.latest_finding(fact, key)
    latest_hit = max(hits, key=lambda d: d.onset or date.min) if hits else None
    use_finding = (
        found is not None
        and found.value != "indeterminate"
        and (
            latest_hit is None
            or (found.date is not None and (latest_hit.onset is None or found.date >= latest_hit.onset))
        )
    )
    if found is not None and use_finding:
        ev = Evidence(
            resource=found.resource, value=found.value, date=_iso(found.date), note=found.detail or None
        )
        age = f.stale(fact, found.date)
        if age is not None:
            return f.unknown(fact, f"a current {label} (last result is {age} days old)", [ev])
        return f.known(fact, found.value == "positive", [ev])
    if latest_hit is not None:
        return f.known(
            fact, True, [Evidence(resource=d.resource, value=d.text, date=_iso(d.onset)) for d in hits]
        )
    return f.unknown(fact, label)


@resolver("pregnant")
def _pregnant(f: PatientFacts) -> FactValue:
    male = _male(f, "pregnant", "not pregnant")
    if male is not None:
        return male
    return _flag_from_conditions_and_findings(
        f,
        "pregnant",
        "pregnancy",
        "pregnant",
        "a pregnancy test within 7 days (persons of child-bearing potential)",
    )


@resolver("breastfeeding")
def _breastfeeding(f: PatientFacts) -> FactValue:
    male = _male(f, "breastfeeding", "not breastfeeding")
    if male is not None:
        return male
    return _flag_from_conditions_and_findings(
        f, "breastfeeding", "breastfeeding", "breastfeeding", "whether the patient is breastfeeding"
    )


@resolver("measurable_disease")
def _measurable(f: PatientFacts) -> FactValue:
    found = f.finding_fact(
        "measurable_disease",
        "measurable_disease",
        "current imaging showing measurable disease by the trial's criteria",
    )
    if found.known:
        return f.known("measurable_disease", found.value == "positive", found.evidence)
    return found


@resolver("active_gvhd")
def _active_gvhd(f: PatientFacts) -> FactValue:
    fact = "active_gvhd"
    assessed = _flag_from_conditions_and_findings(
        f, fact, "gvhd", fact, "an assessment for graft-versus-host disease"
    )
    if assessed.known:
        return assessed
    done = [t for t in f.patient.transplants if t.date is None or t.date <= f.as_of]
    if any(t.type != "autologous" for t in done):
        return assessed  # an allogeneic (or untyped) transplant: GVHD must be assessed
    if done or f.patient.treatment_history_recorded:
        note = "no allogeneic transplant in the recorded history: GVHD cannot arise"
        return f.known(fact, False, [Evidence(note=note)])
    return assessed


def _months_since_transplant(f: PatientFacts, fact: str, kind: str) -> FactValue:
    found = [t for t in f.patient.transplants if t.type == kind and (t.date is None or t.date <= f.as_of)]
    if not found:
        return f.unknown(fact, f"the date of an {kind} transplant (none recorded)")
    dated = [t for t in found if t.date is not None]
    if len(dated) < len(found):
        return f.unknown(fact, f"the date of the {kind} transplant")
    last = max(dated, key=lambda t: t.date or date.min)
    assert last.date is not None
    months = whole_months(last.date, f.as_of)
    return f.known(
        fact, float(months), [Evidence(resource=last.resource, value=months, unit="mo", date=_iso(last.date))]
    )


@resolver("months_since_autologous_transplant")
def _months_since_auto(f: PatientFacts) -> FactValue:
    return _months_since_transplant(f, "months_since_autologous_transplant", "autologous")


#: Antigen codes of the trial parser (``parse-rules.yaml`` ``antigens``) read from findings
#: ``antigen_<code>`` (docs/fhir-input.md); MAGE-A4 immunohistochemistry counts as ``mage_a4``.
ANTIGEN_FINDING_PREFIX = "antigen_"


@resolver("tumor_antigens")
def _tumor_antigens(f: PatientFacts) -> FactValue:
    latest: dict[str, Finding] = {}
    for finding in f.patient.findings:
        if finding.date is not None and finding.date > f.as_of:
            continue
        if finding.key.startswith(ANTIGEN_FINDING_PREFIX):
            code = finding.key.removeprefix(ANTIGEN_FINDING_PREFIX)
        elif finding.key == "mage_a4":
            code = "mage_a4"
        else:
            continue
        if finding.value == "indeterminate":
            continue
        seen = latest.get(code)
        if seen is None or (finding.date or date.min) >= (seen.date or date.min):
            latest[code] = finding
    if not latest:
        return f.unknown(
            "tumor_antigens", "a test of the tumour for the target antigen (flow cytometry or IHC)"
        )
    ev = [
        Evidence(resource=x.resource, value=f"{code} {x.value}", date=_iso(x.date), note=x.detail or None)
        for code, x in sorted(latest.items())
    ]
    positive = tuple(sorted(code for code, x in latest.items() if x.value == "positive"))
    # Only the antigens tested are decided; any other antigen a trial names stays unknown.
    return FactValue(
        fact="tumor_antigens",
        value=positive,
        evidence=tuple(ev),
        tested=tuple(sorted(latest)),
        reason="a test of the tumour",
    )


# -- washouts: days since the last therapy of a kind -----------------------------------------

#: Drug classes that are cytotoxic chemotherapy (data/terminology/drugs.yaml).
CHEMOTHERAPY_CLASSES = frozenset({"chemotherapy", "anthracycline", "alkylating_agent"})
#: Drug classes that are therapeutic monoclonal antibodies; any agent whose INN ends in the WHO
#: stem "-mab" counts too (WHO, "The use of stems in the selection of INN", -mab).
ANTIBODY_CLASSES = frozenset(
    {"anti_cd20", "anti_cd38", "anti_pd1", "anti_pdl1", "anti_ctla4", "bispecific_antibody"}
)


def _is_antibody(t: TherapyExposure) -> bool:
    return bool(ANTIBODY_CLASSES & set(t.classes)) or any(
        word.endswith("mab") for agent in t.agents for word in agent.split()
    )


def _washout(
    f: PatientFacts,
    fact: str,
    kind: str,
    pick: Callable[[TherapyExposure], bool],
    *,
    complete: Callable[[PatientFacts], bool] = lambda f: f.patient.treatment_history_recorded,
) -> FactValue:
    """Days from the end of the most recent therapy of a kind to the evaluation date.

    An ongoing therapy (open end) is 0 days. With a recorded treatment history that holds no
    therapy of the kind, the fact is known and large: the days since birth (a lower bound of
    "never"), so a washout is met; without a history it is unknown.
    """
    given = [t for t in f.patient.therapies if t.start is None or t.start <= f.as_of]
    matching = [t for t in given if pick(t)]
    if not matching:
        if not complete(f):
            return f.unknown(fact, f"the date of the last {kind} (treatment history)")
        days = (f.as_of - f.patient.birth_date).days
        note = f"no {kind} in the recorded treatment history: counted from birth"
        return f.known(fact, float(days), [Evidence(value=days, unit="d", note=note)])
    undated = [t for t in matching if t.start is None and t.end is None]
    if undated:
        names = ", ".join(t.text for t in undated)
        return f.unknown(fact, f"the dates of {names}", [_therapy_evidence(t) for t in undated])

    def last_day(t: TherapyExposure) -> date:
        # An open period (end None after a start) is ongoing: its last dose is today.
        return t.end if t.end is not None else f.as_of

    last = max(matching, key=last_day)
    days = max(0, (f.as_of - last_day(last)).days)
    note = f"last {kind}: {last.text}" + (
        " (ongoing)" if last.end is None else f", ended {last_day(last).isoformat()}"
    )
    return f.known(fact, float(days), [Evidence(resource=last.resource, value=days, unit="d", note=note)])


@resolver("days_since_last_chemotherapy")
def _since_chemo(f: PatientFacts) -> FactValue:
    return _washout(
        f,
        "days_since_last_chemotherapy",
        "chemotherapy",
        lambda t: bool(CHEMOTHERAPY_CLASSES & set(t.classes)),
    )


@resolver("days_since_last_systemic_therapy")
def _since_systemic(f: PatientFacts) -> FactValue:
    return _washout(
        f, "days_since_last_systemic_therapy", "systemic anticancer therapy", lambda t: t.anticancer
    )


@resolver("days_since_last_monoclonal_antibody")
def _since_antibody(f: PatientFacts) -> FactValue:
    return _washout(f, "days_since_last_monoclonal_antibody", "monoclonal antibody", _is_antibody)


@resolver("days_since_last_systemic_steroids")
def _since_steroids(f: PatientFacts) -> FactValue:
    return _washout(
        f,
        "days_since_last_systemic_steroids",
        "systemic corticosteroid",
        lambda t: "corticosteroid" in t.classes,
    )


@resolver("days_since_last_investigational_agent")
def _since_investigational(f: PatientFacts) -> FactValue:
    # A therapy naming no agent of drugs.yaml (imported for its line-of-therapy extension) may be
    # investigational; a history whose every anticancer therapy names a known (approved) agent has none.
    def complete(g: PatientFacts) -> bool:
        therapies = [t for t in g.patient.therapies if t.anticancer]
        return bool(therapies) and all(t.agents or "car_t" in t.classes for t in therapies)

    return _washout(
        f,
        "days_since_last_investigational_agent",
        "investigational agent",
        lambda t: False,
        complete=complete,
    )


@resolver("days_since_last_radiotherapy")
def _since_radiotherapy(f: PatientFacts) -> FactValue:
    # Radiotherapy Procedures are not read from the record, so their absence proves nothing.
    return f.unknown(
        "days_since_last_radiotherapy", "the date of the last radiotherapy (not read from the record)"
    )


@resolver("days_since_major_surgery")
def _since_surgery(f: PatientFacts) -> FactValue:
    # Surgical Procedures are not read from the record, so their absence proves nothing.
    return f.unknown(
        "days_since_major_surgery", "the date of the last major surgery (not read from the record)"
    )
