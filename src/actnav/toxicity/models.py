"""Input models of the toxicity capability: one assessment after infusion, or a course of them.

The input of ``actnav toxicity grade`` is either one :class:`Assessment` object or a :class:`Course`
(``{"weight_kg": ..., "infusion_date": ..., "assessments": [...]}``); the published JSON Schema is
``schemas/toxicity-input.schema.json`` (:func:`export_schema`).

Rules these models keep:

* Unknown keys are rejected, naming the key and the fields that are allowed.
* Implausible numbers are rejected, naming the field: the bounds are one table,
  :data:`PLAUSIBLE_RANGES` (a temperature of 60 degrees C, a negative oxygen flow).
* Booleans and numbers are strict: ``"yes"`` is not ``true`` and ``"38"`` is not a number.
* Codes are closed lists (:data:`OxygenDevice`, :data:`Consciousness` ...); vasopressor names are
  checked against the agents of ``data/toxicity/astct-crs.yaml`` (aliases such as
  ``noradrenaline`` are accepted and stored under the agent's id).
* Absent findings mean "none" for CRS (no hypotension, no oxygen) and "not assessed" for ICANS.

:func:`parse_input`, :func:`parse_assessment` and :func:`parse_course` turn every validation problem
into :class:`~actnav.errors.InputError` whose ``where`` is the field path, e.g.
``assessments[3].temp_c: 60 is not a plausible body temperature (25-45 degrees C)``.

The models also hold the header shared by the grading-table files (:class:`GradingTableFile`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from actnav.errors import InputError
from actnav.knowledge.models import Reference, SourceRef

if typing.TYPE_CHECKING:
    import pint

# --- codes -----------------------------------------------------------------------------------------

OxygenDevice = Literal[
    "none",
    "low_flow_nasal_cannula",
    "blow_by",
    "high_flow_nasal_cannula",
    "facemask",
    "non_rebreather",
    "venturi",
    "cpap",
    "bipap",
    "mechanical_ventilation",
]
"""How supplemental oxygen is given (ASTCT CRS hypoxia row)."""

Consciousness = Literal[
    "alert", "awakens_spontaneously", "awakens_to_voice", "awakens_to_touch", "unarousable"
]
"""Level of consciousness (ASTCT ICANS); ``unarousable`` includes arousable only to vigorous stimuli."""

Seizure = Literal[
    "none",
    "resolved_rapidly",
    "nonconvulsive_resolved_with_intervention",
    "prolonged_over_5_min",
    "repetitive_without_return",
]
"""Seizure finding (ASTCT ICANS seizure row)."""

MotorWeakness = Literal["none", "deep_focal"]
"""Motor finding (ASTCT ICANS): ``deep_focal`` is hemiparesis or paraparesis."""

CerebralEdema = Literal["none", "focal", "diffuse"]
"""Cerebral oedema on neuroimaging (intracranial haemorrhage excluded)."""

RaisedIcpSign = Literal["posturing", "cranial_nerve_vi_palsy", "papilledema", "cushings_triad"]
"""Clinical signs of raised intracranial pressure (ASTCT ICANS grade 4)."""

Drug = Literal[
    "tocilizumab",
    "siltuximab",
    "anakinra",
    "dexamethasone",
    "methylprednisolone",
    "hydrocortisone",
    "prednisone",
    "acetaminophen",
    "ibuprofen",
    "levetiracetam",
]
"""Drugs recorded as given after infusion (anti-cytokine, corticosteroid, antipyretic, antiseizure)."""

InputValue = bool | int | float | str | tuple[str, ...] | None
"""An input value kept with a grade (the inputs that set it)."""

StrictBool = Annotated[bool, Strict()]
Number = Annotated[float, Strict()]  # accepts 38 and 38.5, rejects "38" and true
Count = Annotated[int, Strict()]


# --- plausibility bounds (one table) -------------------------------------------------------------


@dataclass(frozen=True)
class PlausibleRange:
    """Inclusive bounds outside which a value is a typing or unit error, not a patient.

    Args:
        low: smallest plausible value, in ``unit``.
        high: largest plausible value, in ``unit``.
        unit: the unit as written in messages.
        what: what the value is, for messages ("body temperature").
    """

    low: float
    high: float
    unit: str
    what: str

    def problem(self, value: float) -> str | None:
        """The message for an implausible ``value``, or ``None`` if it is plausible."""
        if math.isnan(value) or not self.low <= value <= self.high:
            return f"{value:g} is not a plausible {self.what} ({self.low:g}-{self.high:g} {self.unit})"
        return None


PLAUSIBLE_RANGES: Final[dict[str, PlausibleRange]] = {
    "temp_c": PlausibleRange(25.0, 45.0, "degrees C", "body temperature"),
    "temp_f": PlausibleRange(77.0, 113.0, "degrees F", "body temperature"),
    "oxygen_flow_l_min": PlausibleRange(0.0, 80.0, "L/min", "oxygen flow"),
    "age_years": PlausibleRange(0.0, 120.0, "years", "age"),
    "weight_kg": PlausibleRange(1.0, 400.0, "kg", "body weight"),
    "systolic_bp_mmhg": PlausibleRange(30.0, 300.0, "mmHg", "systolic blood pressure"),
    "spo2_percent": PlausibleRange(30.0, 100.0, "%", "oxygen saturation"),
    "dose_mg": PlausibleRange(0.0, 5000.0, "mg", "single dose"),
}
"""Plausibility bounds by field name (inclusive). Values outside raise :class:`InputError`."""

TEMPERATURE_AGREEMENT_C: Final = 0.1
"""``temp_c`` and ``temp_f`` may both be given when they agree within this many degrees C."""


def _bounded(name: str, description: str) -> Any:
    """A ``Field`` for an optional number whose JSON Schema carries the plausible bounds."""
    bounds = PLAUSIBLE_RANGES[name]
    return Field(default=None, ge=bounds.low, le=bounds.high, description=description)


def _check_plausible(name: str, value: Any) -> Any:
    """Raise ``ValueError`` (named by pydantic after the field) for an implausible number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        problem = PLAUSIBLE_RANGES[name].problem(float(value))
        if problem:
            raise ValueError(problem)
    return value


class FieldProblem(ValueError):
    """A problem found by a model validator, carrying the name of the field it belongs to.

    Args:
        field: the field's name, relative to the model being validated (``capd_score``).
        message: what is wrong, in one sentence.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(message)


def _iso_text(value: Any) -> Any:
    """Only ISO 8601 text (or a date object) is a time; numbers are not read as Unix timestamps."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("give an ISO 8601 date or date-time text, e.g. 2025-06-03T08:00:00+02:00")
    return value


FIRST_YEAR, LAST_YEAR = 1900, 2199  # outside: a typing error, and date arithmetic would overflow


def _plausible_year(value: Any) -> Any:
    """Refuse dates outside 1900-2199 (a year typed as 0001 or 9999)."""
    if isinstance(value, dt.date) and not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(
            f"the year {value.year} is not plausible (give a year from {FIRST_YEAR} to {LAST_YEAR})"
        )
    return value


# ISO 8601 text (never a Unix number) within plausible years; the optional part stays inside so
# the checks see the value as given.
IsoTime = Annotated[dt.datetime | None, BeforeValidator(_iso_text), AfterValidator(_plausible_year)]
IsoDate = Annotated[dt.date | None, BeforeValidator(_iso_text), AfterValidator(_plausible_year)]


# --- input models ----------------------------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IceItems(_Input):
    """The five items of the ICE score (points earned on each).

    Source: Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638, ICE table
    (``data/toxicity/ice.yaml``).
    """

    orientation: Count = Field(ge=0, le=4, description="Year, month, city, hospital: 0-4 points.")
    naming: Count = Field(ge=0, le=3, description="Names three objects: 0-3 points.")
    commands: Count = Field(ge=0, le=1, description="Follows simple commands: 0-1 point.")
    writing: Count = Field(ge=0, le=1, description="Writes a standard sentence: 0-1 point.")
    attention: Count = Field(ge=0, le=1, description="Counts back from 100 by 10: 0-1 point.")

    @field_validator("*", mode="before")
    @classmethod
    def _item_in_range(cls, value: Any, info: ValidationInfo) -> Any:
        from actnav.toxicity.ice import item_problem

        if isinstance(value, int) and not isinstance(value, bool):
            problem = item_problem(str(info.field_name), value)
            if problem:
                raise ValueError(problem)
        return value

    @property
    def total(self) -> int:
        """The ICE score, 0-10."""
        return self.orientation + self.naming + self.commands + self.writing + self.attention


class DrugGiven(_Input):
    """A drug given after infusion (for CRS or ICANS, or an antipyretic)."""

    drug: Drug
    dose_mg: Number | None = _bounded("dose_mg", "Dose given, in mg (optional).")
    route: Literal["iv", "po", "sc"] | None = None
    time: IsoTime = Field(default=None, description="When it was given (ISO 8601).")

    @field_validator("dose_mg", mode="before")
    @classmethod
    def _plausible(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_plausible(str(info.field_name), value)


class LabResult(_Input):
    """A laboratory result recorded with the assessment (kept for other calculators; not graded here)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Lab name in snake case, e.g. ferritin, crp.")
    value: Number
    unit: str = Field(min_length=1, description="UCUM unit, e.g. ng/mL, mg/L, 10*9/L.")
    time: IsoTime = None


class Assessment(_Input):
    """One timed assessment after infusion: vital signs, support given, neurological findings.

    Absent CRS findings mean none (no hypotension, no oxygen); absent neurological findings mean
    not assessed. Give ``temp_c`` or ``temp_f`` (both only if they agree; ``temp_c`` is used), and
    the ICE (``ice`` items or ``ice_score``) for patients over 12 or the CAPD (``capd_score``) for
    children aged 12 or under (when both are given, ``age_years`` decides which one is used).

    Source: Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638 (field names follow the
    ASTCT CRS and ICANS tables).
    """

    time: IsoTime = Field(
        default=None, description="When the assessment was made (ISO 8601); required in a course."
    )
    age_years: Number | None = _bounded("age_years", "Age in years; 12 or under uses the CAPD (floored).")
    developmental_delay: StrictBool = Field(
        default=False, description="Baseline developmental delay: the CAPD may be used over age 12."
    )
    temp_c: Number | None = _bounded("temp_c", "Highest body temperature, degrees C.")
    temp_f: Number | None = _bounded("temp_f", "Highest body temperature, degrees F (converted).")
    fever_treatment_given: StrictBool = Field(
        default=False,
        description="Antipyretic or anti-cytokine therapy has been given for CRS (fever no longer required).",
    )
    hypotension: StrictBool = Field(default=False, description="Hypotension present.")
    systolic_bp_mmhg: Number | None = _bounded("systolic_bp_mmhg", "Systolic blood pressure (recorded only).")
    spo2_percent: Number | None = _bounded("spo2_percent", "Oxygen saturation, % (recorded only).")
    vasopressors: tuple[str, ...] = Field(
        default=(), description="Vasopressor agents running, e.g. ['norepinephrine', 'vasopressin']."
    )
    oxygen_device: OxygenDevice = Field(default="none", description="How oxygen is given.")
    oxygen_flow_l_min: Number | None = _bounded("oxygen_flow_l_min", "Oxygen flow, L/min.")
    ice: IceItems | None = Field(default=None, description="ICE items; or give ice_score.")
    ice_score: Count | None = Field(default=None, ge=0, le=10, description="ICE score 0-10 (10 = normal).")
    capd_score: Count | None = Field(
        default=None, ge=0, le=32, description="CAPD score 0-32 (children <= 12)."
    )
    consciousness: Consciousness | None = None
    consciousness_other_cause: StrictBool = Field(
        default=False, description="Depressed consciousness explained by another cause (e.g. sedation)."
    )
    seizure: Seizure | None = None
    motor_weakness: MotorWeakness | None = None
    cerebral_edema: CerebralEdema | None = None
    raised_icp_signs: tuple[RaisedIcpSign, ...] = ()
    tremor: StrictBool = Field(default=False, description="Tremor (recorded; does not affect ICANS).")
    myoclonus: StrictBool = Field(default=False, description="Myoclonus (recorded; does not affect ICANS).")
    drugs_given: tuple[DrugGiven, ...] = ()
    labs: tuple[LabResult, ...] = ()

    @field_validator(
        "age_years",
        "temp_c",
        "temp_f",
        "systolic_bp_mmhg",
        "spo2_percent",
        "oxygen_flow_l_min",
        mode="before",
    )
    @classmethod
    def _plausible(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_plausible(str(info.field_name), value)

    @field_validator("ice_score", "capd_score", mode="before")
    @classmethod
    def _score_in_range(cls, value: Any, info: ValidationInfo) -> Any:
        from actnav.toxicity.icans import capd_problem
        from actnav.toxicity.ice import total_problem

        if isinstance(value, int) and not isinstance(value, bool):
            problem = total_problem(value) if info.field_name == "ice_score" else capd_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("vasopressors", mode="before")
    @classmethod
    def _known_vasopressors(cls, value: Any) -> Any:
        from actnav.toxicity.crs import vasopressor_id

        if not isinstance(value, list | tuple):
            return value
        ids: list[Any] = []
        for index, name in enumerate(value):
            if not isinstance(name, str):
                raise FieldProblem(f"{index}", f"{name!r} is not a vasopressor name (text expected)")
            agent = vasopressor_id(name)
            if agent is None:
                from actnav.toxicity.crs import load_crs_table

                known = ", ".join(a.id for a in load_crs_table().vasopressor_agents)
                raise FieldProblem(f"{index}", f"unknown vasopressor {name!r} (known: {known})")
            if agent not in ids:
                ids.append(agent)
        return tuple(ids)

    @model_validator(mode="after")
    def _consistent(self) -> Assessment:
        if self.temp_c is not None and self.temp_f is not None:
            converted = fahrenheit_to_celsius(self.temp_f)
            if round(abs(converted - self.temp_c), 2) > TEMPERATURE_AGREEMENT_C:
                raise FieldProblem(
                    "temp_f",
                    f"{self.temp_f:g} F ({converted:g} C) disagrees with temp_c {self.temp_c:g}; "
                    "give one of them",
                )
        if self.oxygen_device == "none" and self.oxygen_flow_l_min:
            raise FieldProblem(
                "oxygen_flow_l_min",
                f"an oxygen flow of {self.oxygen_flow_l_min:g} L/min is given with oxygen_device 'none'",
            )
        if self.ice is not None and self.ice_score is not None and self.ice.total != self.ice_score:
            raise FieldProblem(
                "ice_score",
                f"ice_score {self.ice_score} differs from the sum of the ice items ({self.ice.total})",
            )
        has_ice = self.ice is not None or self.ice_score is not None
        has_capd = self.capd_score is not None
        ice_field = "ice" if self.ice is not None else "ice_score"
        if has_ice and has_capd and self.age_years is None:
            raise FieldProblem(
                "age_years",
                "both the ICE and the CAPD are given: age_years decides which is used "
                "(ICE over 12, CAPD at 12 or under)",
            )
        if self.age_years is not None and has_ice != has_capd:
            max_age = _capd_max_age()
            if self._child() and has_ice:
                raise FieldProblem(
                    ice_field,
                    f"the ICE score is not used for children aged {max_age} or under (age_years "
                    f"{self.age_years:g}); record capd_score instead (ASTCT 2019)",
                )
            if not self._child() and has_capd and not self.developmental_delay:
                raise FieldProblem(
                    "capd_score",
                    f"the CAPD is for children aged {max_age} or under (age_years {self.age_years:g}); "
                    "record the ICE, or set developmental_delay to true (ASTCT 2019)",
                )
        return self

    def _child(self) -> bool:
        """Aged 12 or under in completed years (the CAPD age limit of ``capd.yaml``)."""
        return self.age_years is not None and math.floor(self.age_years) <= _capd_max_age()

    @property
    def encephalopathy_tool(self) -> Literal["ice", "capd"] | None:
        """The score that grades encephalopathy, or ``None`` if neither was recorded.

        When both are recorded the age decides: the CAPD at 12 or under (or with developmental
        delay), the ICE over 12; the other score is then not used.
        """
        has_ice = self.ice is not None or self.ice_score is not None
        if has_ice and self.capd_score is not None:
            return "capd" if self._child() or self.developmental_delay else "ice"
        if has_ice:
            return "ice"
        return "capd" if self.capd_score is not None else None

    @property
    def ice_total(self) -> int | None:
        """The ICE score from ``ice_score`` or the ``ice`` items, or ``None`` if not assessed."""
        if self.ice_score is not None:
            return self.ice_score
        return self.ice.total if self.ice is not None else None

    @property
    def temperature_c(self) -> float | None:
        """Body temperature in degrees C (``temp_f`` converted and rounded to 0.01), or ``None``."""
        if self.temp_c is not None:  # preferred when both are given (they agree, see validation)
            return self.temp_c
        if self.temp_f is not None:
            return fahrenheit_to_celsius(self.temp_f)
        return None


class Course(_Input):
    """A patient's course after infusion: body weight, infusion date and timed assessments."""

    weight_kg: Number = Field(
        ge=PLAUSIBLE_RANGES["weight_kg"].low,
        le=PLAUSIBLE_RANGES["weight_kg"].high,
        description="Body weight, kg (for dosing).",
    )
    infusion_date: IsoDate = Field(default=None, description="Day 0, the day of infusion (ISO 8601).")
    product: str | None = Field(
        default=None,
        description="The product infused: its id (INN with underscores, e.g. axicabtagene_ciloleucel, "
        "lifileucel) or brand name (any case, e.g. Yescarta); stored as the id. Keeps the product's "
        "label lines in the guidance and adds its monitoring plan.",
    )
    age_years: Number | None = _bounded(
        "age_years", "Age in years; used by assessments without their own (else the first age given)."
    )
    assessments: tuple[Assessment, ...] = Field(min_length=1, description="Timed assessments, in any order.")

    @model_validator(mode="before")
    @classmethod
    def _share_age(cls, data: Any) -> Any:
        """An assessment without ``age_years`` takes the course's, or else the first one given.

        The age decides between the ICE and the CAPD, and does not change within a course.
        """
        if not isinstance(data, dict) or not isinstance(data.get("assessments"), list | tuple):
            return data
        items = data["assessments"]
        age = data.get("age_years")
        if age is None:
            given = (a.get("age_years") for a in items if isinstance(a, dict))
            age = next((value for value in given if value is not None), None)
        if age is None:
            return data
        shared = [
            {**a, "age_years": age} if isinstance(a, dict) and "age_years" not in a else a for a in items
        ]
        return {**data, "assessments": shared}

    @field_validator("weight_kg", "age_years", mode="before")
    @classmethod
    def _plausible(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_plausible(str(info.field_name), value)

    @field_validator("product", mode="before")
    @classmethod
    def _known_product(cls, value: Any) -> Any:
        """A product id, INN or brand name (any case) becomes the product id; others are rejected."""
        if not isinstance(value, str):
            return value
        from actnav.toxicity.guidance import resolve_product_id

        try:
            return resolve_product_id(value, where="product")
        except InputError as exc:
            raise ValueError(f"{exc.message} ({exc.hint})" if exc.hint else exc.message) from exc

    @model_validator(mode="after")
    def _timed(self) -> Course:
        aware: bool | None = None
        for index, assessment in enumerate(self.assessments):
            if assessment.time is None:
                raise FieldProblem(f"assessments.{index}.time", "every assessment of a course needs a time")
            this_aware = assessment.time.utcoffset() is not None
            if aware is None:
                aware = this_aware
            elif aware != this_aware:
                raise FieldProblem(
                    f"assessments.{index}.time",
                    "mix of times with and without a UTC offset; give every time the same way",
                )
        for index, assessment in enumerate(self.assessments):
            for number, drug in enumerate(assessment.drugs_given):
                if drug.time is not None and (drug.time.utcoffset() is not None) != aware:
                    raise FieldProblem(
                        f"assessments.{index}.drugs_given.{number}.time",
                        "give drug times the same way as the assessment times (all with a UTC offset, "
                        "or all without)",
                    )
        return self

    def ordered(self) -> list[Assessment]:
        """The assessments sorted by time (stable for equal times)."""
        return sorted(self.assessments, key=lambda a: _sort_key(a.time))


def _capd_max_age() -> int:
    from actnav.toxicity.icans import load_capd_table

    return load_capd_table().applies_to.max_age_years


def _sort_key(time: dt.datetime | None) -> dt.datetime:
    if time is None:
        return dt.datetime.min
    return time.replace(tzinfo=None) - (time.utcoffset() or dt.timedelta(0))


class ToxicityInput(RootModel[Union[Course, Assessment]]):  # noqa: UP007  (RootModel needs a real Union)
    """Input of ``actnav toxicity grade``: one assessment, or a course ``{"weight_kg", "assessments"}``."""


# --- parsing, with errors that name the field -------------------------------------------------------


def parse_input(data: Any) -> Course | Assessment:
    """Validate parsed JSON as a course (an object with ``assessments``) or one assessment.

    Args:
        data: the parsed JSON document.

    Returns:
        A :class:`Course` or an :class:`Assessment`.

    Raises:
        InputError: the document is not an object, or a field is missing, unknown, of the wrong type,
            implausible or inconsistent; ``where`` is the field path (``assessments[3].temp_c``).
    """
    if not isinstance(data, dict):
        raise InputError('expected a JSON object: one assessment, or {"weight_kg", "assessments"}')
    if "assessments" in data:
        return parse_course(data)
    return parse_assessment(data)


def parse_course(data: Any) -> Course:
    """Validate a course; see :func:`parse_input`. Raises :class:`InputError` naming the field."""
    return _validate(Course, data)


def parse_assessment(data: Any, *, where: str = "") -> Assessment:
    """Validate one assessment; see :func:`parse_input`.

    Args:
        data: the assessment as a mapping of field names to values.
        where: a prefix for error locations (``assessments[3]``), or empty.

    Raises:
        InputError: a field is missing, unknown, of the wrong type, implausible or inconsistent.
    """
    return _validate(Assessment, data, prefix=where)


M = TypeVar("M", bound=BaseModel)


def validate_input(model: type[M], data: Any, *, prefix: str = "") -> M:
    """Validate ``data`` against an input model, turning every problem into :class:`InputError`.

    Args:
        model: a pydantic input model (unknown keys rejected).
        data: the parsed JSON.
        prefix: a prefix for error locations, or empty.

    Raises:
        InputError: the first problem, ``where`` naming the field path (``labs.crp.unit``).
    """
    return _validate(model, data, prefix=prefix)


def _validate(model: type[M], data: Any, *, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _input_error(model, exc, prefix) from exc


def input_errors(model: type[BaseModel], exc: ValidationError, *, prefix: str = "") -> list[InputError]:
    """Every problem of a failed validation, each as an :class:`InputError` naming its field.

    :func:`validate_input` reports the first problem only; a form shows each problem beside its
    field.

    Args:
        model: the input model that was validated (for the allowed fields of an unknown key).
        exc: the validation error.
        prefix: a prefix for error locations, or empty.

    Returns:
        One error per problem, in pydantic's order; ``where`` is the field path
        (``assessments[3].temp_c``), or None for the whole document.
    """
    return [_problem(model, error, prefix) for error in exc.errors()]


def _input_error(model: type[BaseModel], exc: ValidationError, prefix: str) -> InputError:
    error = _problem(model, exc.errors()[0], prefix)
    count = exc.error_count()
    if count == 1:
        return error
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})"
    return InputError(error.message + more, where=error.where)


def _problem(model: type[BaseModel], detail: ErrorDetails, prefix: str) -> InputError:
    """One validation problem as an :class:`InputError` naming its field."""
    loc: list[str | int] = list(detail["loc"])
    message = detail["msg"]
    error = detail.get("ctx", {}).get("error")
    if isinstance(error, FieldProblem):
        loc += [int(p) if p.isdigit() else p for p in error.field.split(".")]
        message = error.message
    elif detail["type"] == "value_error" and error is not None:
        message = str(error)
    elif detail["type"] == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        message = f"unknown field; allowed: {', '.join(allowed)}" if allowed else "unknown field"
    elif detail["type"] == "literal_error":
        message = f"unknown value {detail['input']!r}: {message[0].lower()}{message[1:]}"
    elif detail["type"] == "missing":
        message = "this field is required"
    elif detail["type"].endswith(("_type", "_parsing")):
        message = f"{message} (got {detail['input']!r})"
    where = _format_loc(loc)
    if prefix:
        where = f"{prefix}.{where}" if where else prefix
    return InputError(message, where=where or None)


def _format_loc(loc: list[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _fields_at(model: type[BaseModel], path: list[str | int]) -> list[str]:
    """The field names of the model found at ``path`` inside ``model`` (for unknown-field messages)."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if (
            not (isinstance(current, type) and issubclass(current, BaseModel))
            or part not in current.model_fields
        ):
            return []
        current = _model_in(current.model_fields[part].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside ``X | None`` or ``tuple[X, ...]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


# --- units ---------------------------------------------------------------------------------------


@cache
def _units() -> pint.UnitRegistry[Any]:
    """The pint registry, built on first use (building it takes a noticeable fraction of a second)."""
    import pint

    return pint.UnitRegistry()


def fahrenheit_to_celsius(temp_f: float) -> float:
    """Convert a body temperature from degrees F to degrees C, rounded to 0.01 degrees C.

    Rounding keeps 100.4 F at exactly 38.0 C (the ASTCT fever threshold) despite floating-point error.

    Args:
        temp_f: temperature in degrees F.

    Returns:
        Temperature in degrees C.

    Example:
        >>> fahrenheit_to_celsius(100.4)
        38.0
    """
    quantity = _units().Quantity(temp_f, "degF").to("degC")
    return round(float(quantity.magnitude), 2)


# --- grading-table files -------------------------------------------------------------------------


class GradingTableFile(BaseModel):
    """Header shared by the grading-table files under ``data/toxicity/`` (unknown keys rejected).

    Each file carries an ``id``, a dated ``version`` and ``history``, the ``references`` its rows
    cite (each row's ``source.ref`` must name one), and ``remarks`` for assumptions and gaps.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    id: str
    version: str
    title: str
    references: dict[str, Reference]
    remarks: str | None = None
    history: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _sources_declared(self) -> GradingTableFile:
        for where, source in _sources(self, ""):
            if source.ref not in self.references:
                raise ValueError(f"{where}: source.ref {source.ref!r} is not declared under references")
        return self

    @property
    def label(self) -> str:
        """``<id> version <version>``, recorded with every grade computed from the file."""
        return f"{self.id} version {self.version}"


def _sources(node: Any, where: str) -> list[tuple[str, SourceRef]]:
    """Every :class:`SourceRef` inside ``node`` with its path, depth first."""
    if isinstance(node, SourceRef):
        return [(where, node)]
    found: list[tuple[str, SourceRef]] = []
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            found += _sources(getattr(node, name), f"{where}.{name}" if where else name)
    elif isinstance(node, tuple | list):
        for index, item in enumerate(node):
            label = getattr(item, "id", index)
            found += _sources(item, f"{where}[{label}]")
    elif isinstance(node, dict):
        for key, item in node.items():
            found += _sources(item, f"{where}.{key}")
    return found


# --- JSON Schema -----------------------------------------------------------------------------------


def export_schema(path: Path | None = None) -> str:
    """The JSON Schema of the toxicity input (:class:`ToxicityInput`), optionally written to ``path``.

    Args:
        path: where to write it (``schemas/toxicity-input.schema.json``), or ``None`` to only return it.

    Returns:
        The schema as JSON text: 2-space indent, ending in a newline (as ``scripts/export_schemas.py``).
    """
    schema = ToxicityInput.model_json_schema()
    schema["title"] = "ToxicityInput"
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if path is not None:
        path.write_text(text, encoding="utf-8", newline="\n")
    return text
