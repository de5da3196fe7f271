"""Patient facts for the criterion engine: one resolver per fact id of ``facts.yaml``.

:class:`PatientFacts` computes each fact once per evaluation from a :class:`PatientRecord` and
the evaluation date, returning a :class:`FactValue` with its evidence, or ``value=None`` and a
reason when it is unknown (missing, stale, unresolved). Absence is read as "not received" only
where the record says the history was taken (a recorded treatment history); otherwise unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

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
            self._cache[fact_id] = RESOLVERS[fact_id](self) if fact_id in RESOLVERS else self._measure(fact_id)
        return self._cache[fact_id]

    # -- helpers -------------------------------------------------------------------------

    @property
    def lines(self) -> LineCount:
        if self._lines is None:
            self._lines = count_lines(self.patient, as_of=self.as_of)
        return self._lines

    def unknown(self, fact_id: str, reason: str, evidence: Iterable[Evidence] = ()) -> FactValue:
        return FactValue(fact=fact_id, reason=reason, evidence=tuple(evidence))

    def known(self, fact_id: str, value: float | str | bool | tuple[str, ...], evidence: Iterable[Evidence]) -> FactValue:
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
            return self.unknown(fact_id, f"a current {label.rstrip('.').lower()} (last result is {age} days old; window {window} days)", [ev])
        return self.known(fact_id, found.value, [ev])

    def latest_finding(self, fact_id: str, key: str) -> Finding | None:
        items = [f for f in self.patient.findings if f.key == key and (f.date is None or f.date <= self.as_of)]
        if not items:
            return None
        return max(items, key=lambda f: f.date or date.min)

    def finding_fact(self, fact_id: str, key: str, label: str) -> FactValue:
        found = self.latest_finding(fact_id, key)
        if found is None:
            return self.unknown(fact_id, label)
        ev = Evidence(resource=found.resource, value=found.value, date=_iso(found.date), note=found.detail or None)
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
    return Evidence(resource=t.resource, value=t.text, date=_iso(t.start), note=note or (", ".join(t.classes) or None))


def _event_evidence(e: DiseaseStatusEvent) -> Evidence:
    return Evidence(resource=e.resource, value=e.status, date=_iso(e.date), note=f"about {e.focus}" if e.focus else None)


# -- demographics --------------------------------------------------------------------------


@resolver("age_years")
def _age(f: PatientFacts) -> FactValue:
    p = f.patient
    age = age_in_years(p.birth_date, f.as_of)
    ev = Evidence(resource=f"Patient/{p.id}", value=age, unit="a", note=f"born {p.birth_date.isoformat()}, age on {f.as_of.isoformat()}")
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
    evidence = [Evidence(resource=d.resource, value=d.text, date=_iso(d.onset), note=", ".join(d.concepts[:1]) or "not a disease the rules know") for d in diagnoses]
    return f.known("diagnosis", tuple(sorted(f.concepts())), evidence)


@resolver("relapsed_or_refractory")
def _relapsed_or_refractory(f: PatientFacts) -> FactValue:
    events = f.status_events()
    bad = [e for e in events if e.status in ("relapse", "refractory", "progression")]
    coded = [d for d in f.patient.diagnoses if d.in_relapse or d.clinical_status in ("relapse", "recurrence")]
    if bad or coded:
        ev = [_event_evidence(e) for e in bad] + [Evidence(resource=d.resource, value=d.text, note="coded as relapse or recurrence") for d in coded]
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
    events = f.status_events()
    relapses = sorted({e.date for e in events if e.status == "relapse" and e.date is not None})
    undated = [e for e in events if e.status == "relapse" and e.date is None]
    if undated:
        return f.unknown("relapse_count", "the date of every relapse", [_event_evidence(e) for e in undated])
    if not events:
        return f.unknown("relapse_count", "the disease course (dates of each relapse)")
    ev = [_event_evidence(e) for e in events if e.status == "relapse"]
    if not ev:
        ev = [Evidence(note=f"no relapse among {len(events)} disease-status observations")]
    return f.known("relapse_count", float(len(relapses)), ev)


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
        in_window = e.date is not None and first.start is not None and first.start <= e.date and (second_start is None or e.date < second_start)
        if (e.focus and e.focus in first_ids) or (not e.focus and in_window):
            return f.known("refractory_to_first_line", True, [_event_evidence(e), Evidence(note=first.describe())])
    return f.known("refractory_to_first_line", False, [Evidence(note=f"no refractory status during {first.describe()}")])


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
    after = sorted((e for e in events if e.date is not None and e.date >= end), key=lambda e: e.date or date.min)
    if not after:
        return f.known(fact, False, [Evidence(note=f"no relapse after {first.describe()}")])
    relapse = after[0]
    assert relapse.date is not None
    months = whole_months(end, relapse.date)
    ev = [_event_evidence(relapse), Evidence(value=months, unit="mo", note=f"{first.describe()}, ended {end.isoformat()}")]
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
        return f.known("cns_involvement", found.value == "positive", [Evidence(resource=found.resource, value=found.value, date=_iso(found.date))])
    return f.unknown("cns_involvement", "an assessment of central nervous system involvement")


@resolver("metastatic_or_unresectable")
def _metastatic(f: PatientFacts) -> FactValue:
    hits = [d for d in f.patient.diagnoses if "metastatic_disease" in d.concepts]
    if hits:
        return f.known("metastatic_or_unresectable", True, [Evidence(resource=d.resource, value=d.text, date=_iso(d.onset)) for d in hits])
    found = f.latest_finding("metastatic_or_unresectable", "metastatic_or_unresectable")
    if found is not None and found.value != "indeterminate":
        return f.known("metastatic_or_unresectable", found.value == "positive", [Evidence(resource=found.resource, value=found.value, date=_iso(found.date))])
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
    if not counted.certain:
        names = ", ".join(t.text for t in counted.undated)
        return f.unknown("prior_lines", f"start dates or line numbers for: {names}", ev)
    total = Evidence(value=len(counted.lines), unit="lines", note="counted by the documented line rule")
    return f.known("prior_lines", float(len(counted.lines)), [total, *ev])


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
    return f.known(fact, tuple(values), ev)


@resolver("refractory_to")
def _refractory_to(f: PatientFacts) -> FactValue:
    if not f.patient.treatment_history_recorded:
        return _history_unknown(f, "refractory_to")
    events = f.status_events()
    if not events:
        return f.unknown("refractory_to", "the response to each line (which drugs the disease is refractory to)")
    by_id = {t.resource: t for t in f.patient.therapies}
    values: set[str] = set()
    ev: list[Evidence] = []
    for e in events:
        if e.status != "refractory":
            continue
        if e.focus and e.focus in by_id:
            targets = [by_id[e.focus]]
        else:
            started = [line for line in f.lines.lines if line.start is not None and e.date is not None and line.start <= e.date]
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
    ev = [Evidence(resource=t.resource, value=t.type, date=_iso(t.date)) for t in done] or [Evidence(note="no transplant in the recorded history")]
    return f.known("prior_transplant", tuple(sorted({t.type for t in done})), ev)


@resolver("months_since_allogeneic_transplant")
def _months_since_allo(f: PatientFacts) -> FactValue:
    fact = "months_since_allogeneic_transplant"
    allo = [t for t in f.patient.transplants if t.type == "allogeneic" and (t.date is None or t.date <= f.as_of)]
    if not allo:
        return f.unknown(fact, "the date of an allogeneic transplant (none recorded)")
    dated = [t for t in allo if t.date is not None]
    if len(dated) < len(allo):
        return f.unknown(fact, "the date of the allogeneic transplant")
    last = max(dated, key=lambda t: t.date or date.min)
    assert last.date is not None
    months = whole_months(last.date, f.as_of)
    return f.known(fact, float(months), [Evidence(resource=last.resource, value=months, unit="mo", date=_iso(last.date))])


@resolver("transplant_ineligible")
def _transplant_ineligible(f: PatientFacts) -> FactValue:
    found = f.latest_finding("transplant_ineligible", "transplant_ineligible")
    if found is None or found.value == "indeterminate":
        return f.unknown("transplant_ineligible", "the physician's assessment of transplant eligibility")
    return f.known("transplant_ineligible", found.value == "positive", [Evidence(resource=found.resource, value=found.value, date=_iso(found.date))])


# -- biomarkers ----------------------------------------------------------------------------


@resolver("hla_a_p_groups")
def _hla(f: PatientFacts) -> FactValue:
    alleles = [a for a in f.patient.hla if a.locus == "A" and (a.date is None or a.date <= f.as_of)]
    if not alleles:
        return f.unknown("hla_a_p_groups", "high-resolution HLA-A typing")
    ev = [Evidence(resource=a.resource, value=a.written, note=a.p_group or ("in no HLA-A*02 P group the rules list" if a.p_group_known_absent else "P group not determined")) for a in alleles]
    unresolved = [a for a in alleles if a.p_group is None and not a.p_group_known_absent]
    if unresolved:
        names = ", ".join(a.written for a in unresolved)
        return f.unknown("hla_a_p_groups", f"HLA-A typing at P-group level (two or more fields) for {names}", ev)
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
        ev = [*base.evidence, Evidence(value=round(ratio, 2), unit="{xULN}", note=f"{base.value:g} / {found.upper_limit_normal:g}")]
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
        return f.known("active_infection", found.value == "positive", [Evidence(resource=found.resource, value=found.value, date=_iso(found.date))])
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
