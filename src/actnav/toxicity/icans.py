"""ASTCT 2019 grading of immune effector cell-associated neurotoxicity syndrome (ICANS).

The grade tables live in ``data/toxicity/astct-icans.yaml`` (:class:`IcansTable`), ``ice.yaml``
(ICE bands) and ``capd.yaml`` (:class:`CapdTable`); this module reads an assessment against them:

* Encephalopathy: the ICE score for patients over 12; the CAPD for children aged 12 or under (and
  older patients with developmental delay). An ICE of 0 is grade 3 in an awake patient (for example
  with global aphasia) and grade 4 only when the patient is unarousable.
* Depressed level of consciousness (not explained by another cause such as sedation), seizures,
  motor findings, raised intracranial pressure or cerebral oedema.
* The worst domain sets the grade. Tremor and myoclonus alone are not ICANS.
* A domain that was not assessed neither raises nor lowers the grade; it is listed in
  ``not_assessed``.

Source: Lee DW et al., ASTCT consensus grading for cytokine release syndrome and neurologic
toxicity associated with immune effector cells. Biol Blood Marrow Transplant 2019;25:625-638
(ICANS consensus grading for adults and for children, CAPD).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actnav.knowledge.loader import load_data
from actnav.knowledge.models import SourceRef
from actnav.toxicity.ice import ScoreBand, check_bands, load_ice_table
from actnav.toxicity.models import (
    Assessment,
    CerebralEdema,
    Consciousness,
    GradingTableFile,
    IceItems,
    InputValue,
    MotorWeakness,
    RaisedIcpSign,
    Seizure,
    parse_assessment,
)

ICANS_FILE = "toxicity/astct-icans.yaml"
CAPD_FILE = "toxicity/capd.yaml"
ICANS_SOURCE = "ASTCT 2019 ICANS grading: Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638"

Domain = Literal["ice", "capd", "consciousness", "seizure", "motor", "raised_icp"]
DOMAIN_NAMES: dict[str, str] = {
    "ice": "ICE score",
    "capd": "CAPD score",
    "consciousness": "level of consciousness",
    "seizure": "seizure",
    "motor": "motor findings",
    "raised_icp": "raised intracranial pressure / cerebral oedema",
}
IcansStatus = Literal["graded", "unknown"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourcedRule(_Row):
    """A rule stated in words and applied by the code, with its source."""

    id: str
    text: str
    source: SourceRef


class GradedRule(SourcedRule):
    """A rule that gives a grade."""

    grade: int = Field(ge=0, le=4)


class ConsciousnessRow(GradedRule):
    """A level of consciousness and its grade."""

    value: Consciousness


class SeizureRow(GradedRule):
    """A seizure finding and its grade."""

    value: Seizure


class MotorRow(GradedRule):
    """A motor finding and its grade."""

    value: MotorWeakness


class EdemaRow(GradedRule):
    """A cerebral oedema finding on imaging and its grade."""

    value: CerebralEdema


class IcpSignRow(GradedRule):
    """A clinical sign of raised intracranial pressure and its grade."""

    value: RaisedIcpSign


class NotGradedRow(SourcedRule):
    """A finding that is recorded but does not affect the ICANS grade."""

    value: Literal["tremor", "myoclonus"]


class IcansTable(GradingTableFile):
    """``data/toxicity/astct-icans.yaml``: the ASTCT ICANS domains (the ICE and CAPD bands are in
    ``ice.yaml`` and ``capd.yaml``). Checked on load: every code has exactly one row."""

    domain_order: tuple[Domain, ...]
    ice_zero_unarousable: GradedRule
    consciousness: tuple[ConsciousnessRow, ...]
    consciousness_other_cause: SourcedRule
    seizure: tuple[SeizureRow, ...]
    motor_weakness: tuple[MotorRow, ...]
    cerebral_edema: tuple[EdemaRow, ...]
    raised_icp_signs: tuple[IcpSignRow, ...]
    not_graded: tuple[NotGradedRow, ...]
    rules: tuple[SourcedRule, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> IcansTable:
        if sorted(self.domain_order) != sorted(typing.get_args(Domain)):
            raise ValueError(f"domain_order must list each of {list(typing.get_args(Domain))} once")
        tables: list[tuple[str, Sequence[Any], Any]] = [
            ("consciousness", self.consciousness, Consciousness),
            ("seizure", self.seizure, Seizure),
            ("motor_weakness", self.motor_weakness, MotorWeakness),
            ("cerebral_edema", self.cerebral_edema, CerebralEdema),
            ("raised_icp_signs", self.raised_icp_signs, RaisedIcpSign),
        ]
        for name, rows, codes in tables:
            values = [row.value for row in rows]
            expected = list(typing.get_args(codes))
            if sorted(values) != sorted(expected):
                raise ValueError(f"{name}: rows must cover {expected} exactly once, not {values}")
        return self

    def row(self, domain: str, value: str) -> GradedRule:
        """The row of ``value`` in the table named ``domain`` (``seizure``, ``cerebral_edema``...)."""
        rows: Sequence[GradedRule] = getattr(self, domain)
        return next(row for row in rows if getattr(row, "value", None) == value)


class AgeRule(SourcedRule):
    """Children aged ``max_age_years`` or under (completed years) are graded with the CAPD."""

    max_age_years: int = Field(ge=0)


class ScoreRange(_Row):
    """The range of a score, both ends inclusive."""

    min: int
    max: int


class CapdTable(GradingTableFile):
    """``data/toxicity/capd.yaml``: who is graded with the CAPD, its range and its grade bands."""

    applies_to: AgeRule
    score_range: ScoreRange
    score_range_source: SourceRef
    grade_bands: tuple[ScoreBand, ...]

    @model_validator(mode="after")
    def _covered(self) -> CapdTable:
        check_bands(self.grade_bands, self.score_range.min, self.score_range.max, "grade_bands")
        return self

    def band(self, score: int) -> ScoreBand:
        """The grade band of a CAPD score (the table covers the whole range exactly once)."""
        return next(band for band in self.grade_bands if band.contains(score))


@cache
def load_icans_table() -> IcansTable:
    """Load and validate ``data/toxicity/astct-icans.yaml`` once per process.

    Raises:
        DataFileError: the file is unreadable or invalid (names the file, row id and field).
    """
    return load_data(IcansTable, ICANS_FILE)


@cache
def load_capd_table() -> CapdTable:
    """Load and validate ``data/toxicity/capd.yaml`` once per process.

    Raises:
        DataFileError: the file is unreadable or invalid (names the file, row id and field).
    """
    return load_data(CapdTable, CAPD_FILE)


def capd_problem(score: int) -> str | None:
    """The message for a CAPD score outside its range (0-32), or ``None`` if it is in range."""
    score_range = load_capd_table().score_range
    if not score_range.min <= score <= score_range.max:
        return f"{score} is outside the CAPD score range ({score_range.min}-{score_range.max})"
    return None


class IcansGrade(BaseModel):
    """The ASTCT ICANS grade of one assessment, why, and the inputs that set it.

    Attributes:
        grade: 0-4, the worst assessed domain; ``None`` when no neurological finding was recorded.
        status: ``graded`` or ``unknown`` (nothing neurological recorded).
        deciding_domain: the domain that set the grade (``ice``, ``capd``, ``consciousness``,
            ``seizure``, ``motor``, ``raised_icp``); the first in the table's order on a tie;
            ``None`` at grade 0 or when unknown.
        reason: the grade in words, naming the findings that set it.
        tool: ``ice`` or ``capd`` (the encephalopathy score used), or ``None``.
        domain_grades: grade of every assessed domain.
        not_assessed: domains with no finding recorded.
        notes: findings that do not change the grade (tremor, myoclonus, sedation) and assumptions.
        inputs: the input values that set the grade (field name to value).
        rows: ids of the table rows used.
        source: the grading system and the data file versions.
    """

    model_config = ConfigDict(frozen=True)

    grade: int | None
    status: IcansStatus
    deciding_domain: Domain | None
    reason: str
    tool: Literal["ice", "capd"] | None
    domain_grades: dict[str, int]
    not_assessed: tuple[str, ...]
    notes: tuple[str, ...]
    inputs: dict[str, InputValue]
    rows: tuple[str, ...]
    source: str


def grade_icans(
    *,
    age_years: float | None = None,
    developmental_delay: bool = False,
    ice: Mapping[str, int] | IceItems | None = None,
    ice_score: int | None = None,
    capd_score: int | None = None,
    consciousness: str | None = None,
    consciousness_other_cause: bool = False,
    seizure: str | None = None,
    motor_weakness: str | None = None,
    cerebral_edema: str | None = None,
    raised_icp_signs: Sequence[str] = (),
    tremor: bool = False,
    myoclonus: bool = False,
) -> IcansGrade:
    """Grade ICANS with the ASTCT 2019 consensus (adults and children).

    Args:
        age_years: age in years (0-120), floored; 12 or under uses the CAPD, over 12 the ICE.
            When absent, the score given decides (and a note says so).
        developmental_delay: baseline developmental delay (the CAPD may then be used over 12).
        ice: ICE items ``{"orientation": 0-4, "naming": 0-3, "commands": 0-1, "writing": 0-1,
            "attention": 0-1}``; or give ``ice_score``.
        ice_score: ICE score 0-10 (10 = no impairment).
        capd_score: CAPD score 0-32 (9 or more is grade 3).
        consciousness: ``alert``, ``awakens_spontaneously``, ``awakens_to_voice``,
            ``awakens_to_touch`` or ``unarousable``.
        consciousness_other_cause: the depressed consciousness is explained by another cause (such
            as sedating drugs) and is not counted.
        seizure: ``none``, ``resolved_rapidly``, ``nonconvulsive_resolved_with_intervention``,
            ``prolonged_over_5_min`` or ``repetitive_without_return``.
        motor_weakness: ``none`` or ``deep_focal`` (hemiparesis, paraparesis).
        cerebral_edema: ``none``, ``focal`` or ``diffuse`` (on neuroimaging).
        raised_icp_signs: any of ``posturing``, ``cranial_nerve_vi_palsy``, ``papilledema``,
            ``cushings_triad``.
        tremor: tremor present (recorded; does not affect the grade).
        myoclonus: myoclonus present (recorded; does not affect the grade).

    Returns:
        An :class:`IcansGrade`: grade 0-4 set by the worst domain, with ``deciding_domain`` and
        ``reason``; ``None`` when nothing neurological was recorded.

    Raises:
        InputError: an item or score out of range, an unknown code, the ICE for a child aged 12 or
            under, the CAPD over 12 without developmental delay, or both ICE and CAPD; ``where``
            names the field.
        DataFileError: a grading table under ``data/toxicity/`` is invalid.

    Source:
        Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638, ASTCT ICANS consensus grading
        for adults and for children, ICE and CAPD (``data/toxicity/astct-icans.yaml``,
        ``ice.yaml``, ``capd.yaml``).

    Example:
        >>> grade_icans(ice_score=0, consciousness="alert").grade
        3
        >>> grade_icans(ice_score=0, consciousness="unarousable").grade
        4
    """
    assessment = parse_assessment(
        {
            "age_years": age_years,
            "developmental_delay": developmental_delay,
            "ice": ice,
            "ice_score": ice_score,
            "capd_score": capd_score,
            "consciousness": consciousness,
            "consciousness_other_cause": consciousness_other_cause,
            "seizure": seizure,
            "motor_weakness": motor_weakness,
            "cerebral_edema": cerebral_edema,
            "raised_icp_signs": list(raised_icp_signs),
            "tremor": tremor,
            "myoclonus": myoclonus,
        }
    )
    return icans_from_assessment(assessment)


class _Domains:
    """Collects the grade, description, inputs and rows of each assessed domain."""

    def __init__(self) -> None:
        self.grades: dict[str, int] = {}
        self.texts: dict[str, str] = {}
        self.inputs: dict[str, dict[str, InputValue]] = {}
        self.rows: list[str] = []

    def add(self, domain: str, grade: int, text: str, inputs: dict[str, InputValue], *rows: str) -> None:
        self.grades[domain] = grade
        self.texts[domain] = text
        self.inputs[domain] = inputs
        self.rows.extend(rows)


def icans_from_assessment(assessment: Assessment) -> IcansGrade:
    """Grade ICANS for a validated assessment (see :func:`grade_icans`).

    Args:
        assessment: the assessment.

    Returns:
        The :class:`IcansGrade`.

    Raises:
        DataFileError: a grading table under ``data/toxicity/`` is invalid.

    Source:
        Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638 (``data/toxicity/astct-icans.yaml``).
    """
    table = load_icans_table()
    ice_table = load_ice_table()
    capd_table = load_capd_table()
    a = assessment
    domains = _Domains()
    notes: list[str] = []
    tool: Literal["ice", "capd"] | None = None
    unarousable = a.consciousness == "unarousable" and not a.consciousness_other_cause

    ice_total = a.ice_total
    chosen = a.encephalopathy_tool
    max_age = capd_table.applies_to.max_age_years
    if chosen == "capd" and ice_total is not None:
        notes.append(f"ICE score {ice_total} not used: the CAPD grades children aged {max_age} or under")
    if chosen == "ice" and a.capd_score is not None:
        notes.append(f"CAPD score {a.capd_score} not used: the ICE grades patients over {max_age}")
    if chosen == "ice" and ice_total is not None:
        tool = "ice"
        band = ice_table.band(ice_total)
        inputs: dict[str, InputValue] = {"ice_score": ice_total}
        if a.ice is not None:
            inputs.update({f"ice.{name}": getattr(a.ice, name) for name in type(a.ice).model_fields})
        if ice_total == 0 and unarousable:
            rule = table.ice_zero_unarousable
            inputs["consciousness"] = a.consciousness
            domains.add(
                "ice", rule.grade, "ICE 0 because unarousable (cannot do the ICE)", inputs, band.id, rule.id
            )
        elif ice_total == 0:
            text = "ICE 0 in an awake patient (e.g. global aphasia)"
            domains.add("ice", band.grade, text, inputs, band.id)
            if a.consciousness is None:
                notes.append(
                    "consciousness not recorded: an ICE of 0 in an unarousable patient would be grade 4"
                )
        else:
            domains.add("ice", band.grade, f"ICE {ice_total}{_band_text(band)}", inputs, band.id)
        if a.age_years is None:
            notes.append(f"age not recorded: graded with the ICE, which is for patients over {max_age}")
    elif chosen == "capd" and a.capd_score is not None:
        tool = "capd"
        band = capd_table.band(a.capd_score)
        text = f"CAPD {a.capd_score}{_band_text(band)}"
        domains.add("capd", band.grade, text, {"capd_score": a.capd_score}, band.id, capd_table.applies_to.id)
        if a.age_years is None:
            notes.append(
                f"age not recorded: graded with the CAPD, which is for children aged {max_age} or under"
            )
        elif math.floor(a.age_years) > max_age:
            notes.append(f"CAPD used over age {max_age} because of developmental delay")

    if a.consciousness is not None:
        row = table.row("consciousness", a.consciousness)
        if a.consciousness_other_cause and row.grade > 0:
            notes.append(
                f"depressed level of consciousness ({a.consciousness}) explained by another cause: "
                "not counted"
            )
        else:
            text = row.text.rstrip(".")
            domains.add("consciousness", row.grade, text, {"consciousness": a.consciousness}, row.id)
    if a.seizure is not None:
        row = table.row("seizure", a.seizure)
        domains.add("seizure", row.grade, row.text.rstrip("."), {"seizure": a.seizure}, row.id)
    if a.motor_weakness is not None:
        row = table.row("motor_weakness", a.motor_weakness)
        domains.add("motor", row.grade, row.text.rstrip("."), {"motor_weakness": a.motor_weakness}, row.id)
    if a.cerebral_edema is not None or a.raised_icp_signs:
        _add_raised_icp(domains, table, a)
    for finding in table.not_graded:
        if getattr(a, finding.value):
            notes.append(f"{finding.value} recorded: graded with CTCAE v5.0, does not affect the ICANS grade")

    source = f"{ICANS_SOURCE} ({table.label}; {ice_table.label}; {capd_table.label})"
    not_assessed = _not_assessed(domains.grades)
    if not domains.grades:
        tremor_only = a.tremor or a.myoclonus
        reason = (
            "grade 0: tremor or myoclonus alone is not ICANS; no ICANS domain assessed"
            if tremor_only
            else "no neurological assessment recorded (ICE or CAPD, consciousness, seizure, motor, imaging)"
        )
        tremor_inputs: dict[str, InputValue] = (
            {"tremor": a.tremor, "myoclonus": a.myoclonus} if tremor_only else {}
        )
        return IcansGrade(
            grade=0 if tremor_only else None,
            status="graded" if tremor_only else "unknown",
            deciding_domain=None,
            reason=reason,
            tool=None,
            domain_grades={},
            not_assessed=not_assessed,
            notes=tuple(notes),
            inputs=tremor_inputs,
            rows=tuple(f.id for f in table.not_graded if getattr(a, f.value)),
            source=source,
        )

    grade = max(domains.grades.values())
    order = [d for d in table.domain_order if d in domains.grades]
    at_max = [d for d in order if domains.grades[d] == grade]
    deciding: Domain | None = at_max[0] if grade > 0 else None
    inputs = {}
    for domain in at_max if grade > 0 else order:
        inputs.update(domains.inputs[domain])
    if grade == 0:
        found = "; ".join(f"{DOMAIN_NAMES[d]}: {domains.texts[d]}" for d in order)
        reason = f"grade 0: no ICANS finding ({found})"
    else:
        worst = "; ".join(f"{DOMAIN_NAMES[d]}: {domains.texts[d]}" for d in at_max)
        others = [d for d in sorted(order, key=lambda d: -domains.grades[d]) if d not in at_max]
        reason = f"grade {grade}: {worst}"
        lower = [f"{DOMAIN_NAMES[d]} grade {domains.grades[d]}" for d in others if domains.grades[d] > 0]
        if lower:
            reason += f"; also {', '.join(lower)}: the worst domain sets the grade"
    return IcansGrade(
        grade=grade,
        status="graded",
        deciding_domain=deciding,
        reason=reason,
        tool=tool,
        domain_grades=dict(domains.grades),
        not_assessed=not_assessed,
        notes=tuple(notes),
        inputs=inputs,
        rows=tuple(domains.rows),
        source=source,
    )


def _band_text(band: ScoreBand) -> str:
    return "" if band.min == band.max else f" (band {band.min}-{band.max})"


def _add_raised_icp(domains: _Domains, table: IcansTable, a: Assessment) -> None:
    grade = 0
    texts: list[str] = []
    inputs: dict[str, InputValue] = {}
    rows: list[str] = []
    if a.cerebral_edema is not None:
        row = table.row("cerebral_edema", a.cerebral_edema)
        grade = row.grade
        texts.append(row.text.rstrip("."))
        inputs["cerebral_edema"] = a.cerebral_edema
        rows.append(row.id)
    for sign in dict.fromkeys(a.raised_icp_signs):
        row = table.row("raised_icp_signs", sign)
        grade = max(grade, row.grade)
        texts.append(row.text.rstrip("."))
        rows.append(row.id)
    if a.raised_icp_signs:
        inputs["raised_icp_signs"] = a.raised_icp_signs
    domains.add("raised_icp", grade, "; ".join(texts), inputs, *rows)


def _not_assessed(grades: Mapping[str, int]) -> tuple[str, ...]:
    missing = []
    if "ice" not in grades and "capd" not in grades:
        missing.append("ice_or_capd")
    missing += [d for d in ("consciousness", "seizure", "motor", "raised_icp") if d not in grades]
    return tuple(missing)
