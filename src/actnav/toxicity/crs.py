"""ASTCT 2019 grading of cytokine release syndrome (CRS).

The grade table lives in ``data/toxicity/astct-crs.yaml`` (:class:`CrsTable`); this module reads an
assessment against it:

* Fever is a temperature at or above the table's threshold (38.0 degrees C); degrees F are
  converted first (100.4 F is 38.0 C).
* Hypotension: none, not requiring vasopressors, one vasopressor with or without vasopressin,
  multiple vasopressors (vasopressin is not counted towards "multiple").
* Hypoxia: none; low-flow nasal cannula (6 L/min or less) or blow-by; high-flow nasal cannula
  (over 6 L/min), facemask, non-rebreather or Venturi mask; positive pressure (CPAP, BiPAP,
  mechanical ventilation). A nasal cannula is classified by its flow when the flow is given.
* The more severe of hypotension and hypoxia sets the grade; fever alone is grade 1.
* Once antipyretic or anti-cytokine therapy has been given, fever is no longer required.
* Without fever and without such therapy, no grade is given: "criteria for CRS not met; consider
  other causes".
* Organ toxicities do not change the CRS grade (they are graded with CTCAE elsewhere).

Source: Lee DW et al., ASTCT consensus grading for cytokine release syndrome and neurologic
toxicity associated with immune effector cells. Biol Blood Marrow Transplant 2019;25:625-638
(CRS consensus grading table and footnotes).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actnav.knowledge.loader import load_data
from actnav.knowledge.models import SourceRef
from actnav.toxicity.models import (
    Assessment,
    Drug,
    DrugGiven,
    GradingTableFile,
    InputValue,
    OxygenDevice,
    parse_assessment,
)

CRS_FILE = "toxicity/astct-crs.yaml"
CRS_SOURCE = "ASTCT 2019 CRS grading: Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638"
NOT_MET = "criteria for CRS not met; consider other causes"

HypotensionLevel = Literal["none", "not_requiring_vasopressors", "one_vasopressor", "multiple_vasopressors"]
HypoxiaLevel = Literal["none", "low_flow", "high_flow_or_mask", "positive_pressure"]
CrsStatus = Literal["graded", "not_met", "unknown"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Row):
    """A number with its UCUM unit."""

    value: float
    unit: Literal["Cel"]


class FeverRule(_Row):
    """The fever criterion: temperature compared with ``threshold``; fever alone gives ``grade``."""

    id: str
    threshold: Threshold
    comparator: Literal["ge", "gt"]
    grade: int = Field(ge=1, le=1)
    text: str
    source: SourceRef

    def met(self, temp_c: float) -> bool:
        """Whether ``temp_c`` (degrees C) is a fever."""
        limit = self.threshold.value
        return temp_c >= limit if self.comparator == "ge" else temp_c > limit


class FeverMasking(_Row):
    """Drugs after which fever is no longer required to grade CRS."""

    id: str
    drugs: tuple[Drug, ...]
    text: str
    source: SourceRef


class VasopressorAgent(_Row):
    """A vasopressor, its accepted aliases, and whether it counts towards "multiple vasopressors"."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    aliases: tuple[str, ...] = ()
    counts_toward_multiple: bool


class HypotensionRow(_Row):
    """A hypotension level and the CRS grade it implies.

    Without vasopressors a row matches on ``hypotension``; with vasopressors it matches on the
    number of agents that count towards "multiple" (``counted_vasopressors_min``-``max``).
    """

    id: str
    level: HypotensionLevel
    grade: int = Field(ge=0, le=4)
    vasopressor_given: bool
    hypotension: bool | None = None
    counted_vasopressors_min: int = Field(default=0, ge=0)
    counted_vasopressors_max: int | None = None
    text: str
    source: SourceRef

    def matches(self, hypotension: bool, given: int, counted: int) -> bool:
        """Whether this row describes ``hypotension`` with ``given`` agents of which ``counted`` count."""
        if self.vasopressor_given != (given > 0):
            return False
        if given == 0:
            return self.hypotension == hypotension
        top = self.counted_vasopressors_max
        return self.counted_vasopressors_min <= counted and (top is None or counted <= top)


class FlowBound(_Row):
    """A bound on oxygen flow in L/min: ``le`` (at most) or ``gt`` (more than)."""

    le: float | None = None
    gt: float | None = None

    @model_validator(mode="after")
    def _one(self) -> FlowBound:
        if (self.le is None) == (self.gt is None):
            raise ValueError("give exactly one of le, gt")
        return self

    def holds(self, flow_l_min: float) -> bool:
        """Whether ``flow_l_min`` satisfies the bound."""
        if self.le is not None:
            return flow_l_min <= self.le
        return self.gt is not None and flow_l_min > self.gt


class HypoxiaRow(_Row):
    """An oxygen-support level: the devices it covers, an optional flow bound, the grade it implies.

    ``if_flow_missing`` lists the devices this row takes when the flow is not recorded (a device
    named low-flow is taken as low flow, one named high-flow as high flow).
    """

    id: str
    level: HypoxiaLevel
    grade: int = Field(ge=0, le=4)
    devices: tuple[OxygenDevice, ...]
    flow_l_min: FlowBound | None = None
    if_flow_missing: tuple[OxygenDevice, ...] = ()
    text: str
    source: SourceRef

    def matches(self, device: str, flow_l_min: float | None) -> bool:
        """Whether this row describes ``device`` at ``flow_l_min`` (L/min, or ``None`` if not given)."""
        if device not in self.devices:
            return False
        if self.flow_l_min is None:
            return True
        if flow_l_min is None:
            return device in self.if_flow_missing
        return self.flow_l_min.holds(flow_l_min)


class TableRule(_Row):
    """A rule stated in words (applied by the code), with its source."""

    id: str
    text: str
    source: SourceRef


class CrsTable(GradingTableFile):
    """``data/toxicity/astct-crs.yaml``: the ASTCT CRS grade table.

    Checked on load: every oxygen device at every flow and every hypotension/vasopressor
    combination is matched by exactly one row.
    """

    fever: FeverRule
    fever_not_required_after: FeverMasking
    vasopressor_agents: tuple[VasopressorAgent, ...]
    hypotension: tuple[HypotensionRow, ...]
    hypoxia: tuple[HypoxiaRow, ...]
    rules: tuple[TableRule, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> CrsTable:
        names: dict[str, str] = {}
        for agent in self.vasopressor_agents:
            for name in (agent.id, *agent.aliases):
                key = _normalise(name)
                if key in names:
                    raise ValueError(f"vasopressor name {name!r} is used twice ({names[key]}, {agent.id})")
                names[key] = agent.id
        for hypotension in (False, True):
            self._one_hypotension_row(hypotension, 0, 0)
        for given in range(1, 5):
            for counted in range(given + 1):
                self._one_hypotension_row(True, given, counted)
        bounds = sorted({b for row in self.hypoxia if row.flow_l_min for b in _bound_values(row.flow_l_min)})
        flows: list[float | None] = [None, 0.0, 80.0]
        for bound in bounds:
            flows += [bound - 0.5, bound, bound + 0.01]
        for device in typing.get_args(OxygenDevice):
            for flow in flows:
                rows = [row.id for row in self.hypoxia if row.matches(device, flow)]
                if len(rows) != 1:
                    raise ValueError(f"hypoxia: device {device!r} at flow {flow} matches rows {rows}")
        return self

    def _one_hypotension_row(self, hypotension: bool, given: int, counted: int) -> HypotensionRow:
        rows = [row for row in self.hypotension if row.matches(hypotension, given, counted)]
        if len(rows) != 1:
            raise ValueError(
                f"hypotension: hypotension={hypotension}, {given} vasopressors ({counted} counted) "
                f"matches rows {[row.id for row in rows]}"
            )
        return rows[0]

    def hypotension_row(self, hypotension: bool, vasopressors: Sequence[str]) -> HypotensionRow:
        """The hypotension row for the hypotension flag and the vasopressor agent ids running."""
        counting = {agent.id for agent in self.vasopressor_agents if agent.counts_toward_multiple}
        counted = sum(1 for agent in set(vasopressors) if agent in counting)
        return self._one_hypotension_row(hypotension, len(set(vasopressors)), counted)

    def hypoxia_row(self, device: str, flow_l_min: float | None) -> HypoxiaRow:
        """The hypoxia row for an oxygen device and flow (L/min, or ``None``)."""
        return next(row for row in self.hypoxia if row.matches(device, flow_l_min))


def _bound_values(bound: FlowBound) -> list[float]:
    return [value for value in (bound.le, bound.gt) if value is not None]


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


@cache
def load_crs_table() -> CrsTable:
    """Load and validate ``data/toxicity/astct-crs.yaml`` once per process.

    Raises:
        DataFileError: the file is unreadable or invalid (names the file, row id and field).
    """
    return load_data(CrsTable, CRS_FILE)


def vasopressor_id(name: str) -> str | None:
    """The agent id of a vasopressor name or alias (case and spacing ignored), or ``None`` if unknown.

    Example:
        >>> vasopressor_id("Noradrenaline")
        'norepinephrine'
    """
    key = _normalise(name)
    for agent in load_crs_table().vasopressor_agents:
        if key in {_normalise(n) for n in (agent.id, *agent.aliases)}:
            return agent.id
    return None


class CrsGrade(BaseModel):
    """The ASTCT CRS grade of one assessment, why, and the inputs that set it.

    Attributes:
        grade: 0-4; ``None`` when the criteria are not met (no fever, no prior treatment) or
            cannot be judged (temperature not recorded).
        status: ``graded``, ``not_met`` (no fever and no antipyretic or anti-cytokine therapy:
            "criteria for CRS not met; consider other causes") or ``unknown`` (temperature not
            recorded and no such therapy).
        reason: the grade in words, naming the findings that set it.
        temp_c: temperature used, degrees C (converted from F if needed), or ``None``.
        fever: temperature at or above 38.0 degrees C; ``None`` if not recorded.
        fever_required: ``False`` once antipyretic or anti-cytokine therapy has been given.
        hypotension_level / hypotension_grade: the hypotension row and the grade it implies.
        hypoxia_level / hypoxia_grade: the oxygen-support row and the grade it implies.
        set_by: the parameters that set the grade (``fever``, ``fever_not_required``,
            ``hypotension``, ``hypoxia``).
        inputs: the input values behind ``set_by`` (field name to value).
        rows: ids of the table rows used.
        source: the grading system and the data file version.
    """

    model_config = ConfigDict(frozen=True)

    grade: int | None
    status: CrsStatus
    reason: str
    temp_c: float | None
    fever: bool | None
    fever_required: bool
    hypotension_level: HypotensionLevel
    hypotension_grade: int
    hypoxia_level: HypoxiaLevel
    hypoxia_grade: int
    set_by: tuple[str, ...]
    inputs: dict[str, InputValue]
    rows: tuple[str, ...]
    source: str


def grade_crs(
    *,
    temp_c: float | None = None,
    temp_f: float | None = None,
    fever_treatment_given: bool = False,
    hypotension: bool = False,
    vasopressors: Sequence[str] = (),
    oxygen_device: str = "none",
    oxygen_flow_l_min: float | None = None,
    drugs_given: Sequence[Mapping[str, Any] | DrugGiven] = (),
) -> CrsGrade:
    """Grade cytokine release syndrome with the ASTCT 2019 consensus.

    Args:
        temp_c: highest body temperature, degrees C (25-45); or give ``temp_f``.
        temp_f: highest body temperature, degrees F (77-113); converted to C, rounded to 0.01.
        fever_treatment_given: antipyretic or anti-cytokine therapy (tocilizumab, steroids) has been
            given for CRS; fever is then no longer required.
        hypotension: hypotension present (with no vasopressor: "not requiring vasopressors").
        vasopressors: agents running, e.g. ``["norepinephrine", "vasopressin"]``; vasopressin does not
            count towards "multiple vasopressors".
        oxygen_device: ``none``, ``low_flow_nasal_cannula``, ``blow_by``, ``high_flow_nasal_cannula``,
            ``facemask``, ``non_rebreather``, ``venturi``, ``cpap``, ``bipap`` or
            ``mechanical_ventilation``.
        oxygen_flow_l_min: oxygen flow, L/min (0-80); a nasal cannula at 6 L/min or less is low flow.
        drugs_given: drugs given (``{"drug": "tocilizumab", "dose_mg": 640}``); tocilizumab,
            siltuximab, anakinra and corticosteroids also make fever no longer required.

    Returns:
        A :class:`CrsGrade`: grade 0-4, or ``None`` with "criteria for CRS not met; consider other
        causes" when there is no fever and no such therapy.

    Raises:
        InputError: an implausible or unknown value (temperature of 60 C, negative flow, unknown
            device or vasopressor, both ``temp_c`` and ``temp_f``); ``where`` names the field.
        DataFileError: ``data/toxicity/astct-crs.yaml`` is invalid.

    Source:
        Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638, ASTCT CRS consensus grading
        table and footnotes (``data/toxicity/astct-crs.yaml``).

    Example:
        >>> grade_crs(temp_c=38.5, vasopressors=["norepinephrine", "vasopressin"]).grade
        3
    """
    assessment = parse_assessment(
        {
            "temp_c": temp_c,
            "temp_f": temp_f,
            "fever_treatment_given": fever_treatment_given,
            "hypotension": hypotension,
            "vasopressors": list(vasopressors),
            "oxygen_device": oxygen_device,
            "oxygen_flow_l_min": oxygen_flow_l_min,
            "drugs_given": list(drugs_given),
        }
    )
    return crs_from_assessment(assessment)


def crs_from_assessment(assessment: Assessment, *, treated_before: bool = False) -> CrsGrade:
    """Grade CRS for a validated assessment (see :func:`grade_crs`).

    Args:
        assessment: the assessment.
        treated_before: antipyretic or anti-cytokine therapy was recorded at an earlier assessment
            of the same course, so fever is no longer required.

    Returns:
        The :class:`CrsGrade`.

    Raises:
        DataFileError: ``data/toxicity/astct-crs.yaml`` is invalid.

    Source:
        Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638 (``data/toxicity/astct-crs.yaml``).
    """
    table = load_crs_table()
    temp_c = assessment.temperature_c
    fever = None if temp_c is None else table.fever.met(temp_c)
    masking = [d.drug for d in assessment.drugs_given if d.drug in table.fever_not_required_after.drugs]
    fever_required = not (assessment.fever_treatment_given or masking or treated_before)
    hypo = table.hypotension_row(assessment.hypotension, assessment.vasopressors)
    oxygen = table.hypoxia_row(assessment.oxygen_device, assessment.oxygen_flow_l_min)
    support_grade = max(hypo.grade, oxygen.grade)
    source = f"{CRS_SOURCE} ({table.label})"

    inputs: dict[str, InputValue] = {}
    temp_inputs: dict[str, InputValue] = {"temp_c": temp_c}
    if assessment.temp_f is not None:
        temp_inputs["temp_f"] = assessment.temp_f
    treatment_inputs: dict[str, InputValue] = {"fever_treatment_given": assessment.fever_treatment_given}
    if masking:
        treatment_inputs["drugs_given"] = tuple(masking)
    if treated_before:
        treatment_inputs["fever_treatment_before"] = True
    hypo_inputs: dict[str, InputValue] = {
        "hypotension": assessment.hypotension,
        "vasopressors": assessment.vasopressors,
    }
    oxygen_inputs: dict[str, InputValue] = {
        "oxygen_device": assessment.oxygen_device,
        "oxygen_flow_l_min": assessment.oxygen_flow_l_min,
    }
    common = {
        "temp_c": temp_c,
        "fever": fever,
        "fever_required": fever_required,
        "hypotension_level": hypo.level,
        "hypotension_grade": hypo.grade,
        "hypoxia_level": oxygen.level,
        "hypoxia_grade": oxygen.grade,
        "source": source,
    }
    temp_text = "not recorded" if temp_c is None else _temp_text(assessment, temp_c)
    treatment_text = _treatment_text(assessment.fever_treatment_given, masking, treated_before)
    findings = _support_text(hypo, oxygen, assessment)

    if fever is not True and fever_required:
        rows = (table.fever.id, hypo.id, oxygen.id)
        if fever is False:
            limit = _one_decimal(table.fever.threshold.value)
            reason = (
                f"{NOT_MET} (temperature {temp_text}, below {limit} C, and no "
                "antipyretic or anti-cytokine therapy given)"
            )
            status: CrsStatus = "not_met"
        else:
            reason = (
                "temperature not recorded and no antipyretic or anti-cytokine therapy given: cannot tell "
                "whether the criteria for CRS are met"
            )
            status = "unknown"
        if support_grade > 0:
            reason += f"; {findings} without fever: possible CRS, fever absent"
        inputs.update(temp_inputs)
        inputs.update(treatment_inputs)
        return CrsGrade(
            grade=None, status=status, reason=reason, set_by=(), inputs=inputs, rows=rows, **common
        )

    set_by: list[str] = []
    if fever:
        set_by.append("fever")
        inputs.update(temp_inputs)
    else:
        set_by.append("fever_not_required")
        inputs.update(treatment_inputs)
        inputs.update(temp_inputs)
    grade = max(table.fever.grade if fever else 0, support_grade)
    if support_grade > 0 and support_grade == grade:
        if hypo.grade == grade:
            set_by.append("hypotension")
            inputs.update(hypo_inputs)
        if oxygen.grade == grade:
            set_by.append("hypoxia")
            inputs.update(oxygen_inputs)
    rows_used = [table.fever.id if fever else table.fever_not_required_after.id, hypo.id, oxygen.id]

    lead = (
        f"fever {temp_text}"
        if fever
        else f"fever not required after {treatment_text} (temperature {temp_text})"
    )
    if support_grade == 0:
        tail = "no hypotension and no hypoxia"
        reason = f"grade {grade}: {lead}; {tail}" if fever else f"grade 0: {lead}; {tail}: no sign of CRS"
    else:
        reason = f"grade {grade}: {lead}; {findings}"
        if hypo.grade > 0 and oxygen.grade > 0:
            reason += "; the more severe of hypotension and hypoxia sets the grade"
    return CrsGrade(
        grade=grade,
        status="graded",
        reason=reason,
        set_by=tuple(set_by),
        inputs=inputs,
        rows=tuple(rows_used),
        **common,
    )


def _temp_text(assessment: Assessment, temp_c: float) -> str:
    if assessment.temp_f is not None:
        return f"{assessment.temp_f:g} F = {_one_decimal(temp_c)} C"
    return f"{_one_decimal(temp_c)} C"


def _one_decimal(value: float) -> str:
    """38 -> '38.0', 38.25 -> '38.25': temperatures read as written on a chart."""
    text = f"{value:g}"
    return text if "." in text else f"{value:.1f}"


def _treatment_text(flag: bool, drugs: Sequence[str], before: bool) -> str:
    parts = []
    if drugs:
        parts.append(", ".join(drugs))
    if flag and not drugs:
        parts.append("antipyretic or anti-cytokine therapy")
    if before and not parts:
        parts.append("antipyretic or anti-cytokine therapy recorded at an earlier assessment")
    return " and ".join(parts)


def _support_text(hypo: HypotensionRow, oxygen: HypoxiaRow, assessment: Assessment) -> str:
    parts = []
    if hypo.grade > 0:
        text = hypo.text.rstrip(".")
        text = text[0].lower() + text[1:]
        if assessment.vasopressors:
            text += f" ({', '.join(assessment.vasopressors)})"
        parts.append(f"{text} (grade {hypo.grade})")
    if oxygen.grade > 0:
        text = oxygen.text.rstrip(".")
        text = text[0].lower() + text[1:]
        if assessment.oxygen_flow_l_min is not None:
            text += f" at {assessment.oxygen_flow_l_min:g} L/min"
        parts.append(f"{text} (grade {oxygen.grade})")
    return "; ".join(parts) if parts else "no hypotension and no hypoxia"
