"""CTCAE v5.0 grading of the laboratory and clinical toxicities that follow cell therapy.

The grade tables are data (``actnav/data/toxicity/ctcae-v5.yaml``), each term with its MedDRA
code, its "not defined" grades and its source. :func:`grade_ctcae` grades one term:

* **ALT, AST, total bilirubin**: multiples of the ULN when the baseline is normal (or unknown),
  multiples of the patient's baseline when the baseline is above the ULN (v5.0 baseline rule).
* **Creatinine**: multiples of the ULN, or of the baseline as an alternative (higher grade kept).
* **Neutrophils, platelets, lymphocytes, white cells, haemoglobin**: grade 1 starts below the
  lab's LLN (a value at or above the LLN is grade 0); haemoglobin in mmol/L or g/L is graded on
  CTCAE's own columns for those units.
* **Fever** (Celsius, or Fahrenheit converted) and **febrile neutropenia**.
* **Diarrhoea, colitis, pneumonitis, rash maculo-papular, fatigue**: clinician-selected options
  (plus stools per day above baseline, and rash body-surface area with symptom severity).

Grade 0 means no CTCAE grade is met. Grades the workbook leaves empty are listed in
``not_defined_grades`` and never returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from actnav.eligibility.engine import SourceInfo
from actnav.errors import InputError
from actnav.knowledge.models import SourceRef
from actnav.toxicity.risk import (
    Rule,
    ToxFile,
    ToxModel,
    apply_rules,
    check_number,
    cite,
    convert,
    dedupe_sources,
    load_data_file,
    ucum,
)

Kind = Literal["increase_x_uln", "decrease_below_lln", "fever", "febrile_neutropenia", "clinical"]
Symptoms = Literal["none", "mild", "moderate", "severe"]
Column = Literal["uln", "baseline", "lln", "celsius", "criteria", "options"]
Number = Annotated[float, Strict()]


class Option(ToxModel):
    """A clinician-selectable finding that meets one grade of a term."""

    id: str
    grade: int = Field(ge=1, le=5)
    text: str


class FeverSpec(ToxModel):
    rules_c: tuple[Rule, ...]
    grade4_hours_gt: float


class FebrileNeutropeniaSpec(ToxModel):
    anc_10e9_l_lt: float
    single_temperature_c_gt: float
    sustained_temperature_c_ge: float
    sustained_hours_gt: float


class RashSpec(ToxModel):
    grade1_bsa_lt: float
    grade2_bsa_le: float
    severe_symptoms: tuple[Symptoms, ...]


class Term(ToxModel):
    """One CTCAE term with its grade table."""

    id: str
    aliases: tuple[str, ...] = ()
    name: str
    meddra: str
    soc: str
    kind: Kind
    baseline_mode: Literal["none", "if_abnormal", "alternative"] = "none"
    uln_rules: tuple[Rule, ...] = ()
    baseline_rules: tuple[Rule, ...] = ()
    baseline_gap_source: SourceRef | None = None
    alternative_source: SourceRef | None = None
    unit: str | None = None
    rules_by_unit: dict[str, tuple[Rule, ...]] = Field(default_factory=dict)
    fever: FeverSpec | None = None
    febrile_neutropenia: FebrileNeutropeniaSpec | None = None
    stools_rules: tuple[Rule, ...] = ()
    rash: RashSpec | None = None
    options: tuple[Option, ...] = ()
    not_defined: tuple[int, ...]
    grades: dict[int, str]
    source: SourceRef
    notes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Term:
        need = {
            "increase_x_uln": bool(self.uln_rules),
            "decrease_below_lln": bool(self.rules_by_unit) and self.unit in self.rules_by_unit,
            "fever": self.fever is not None,
            "febrile_neutropenia": self.febrile_neutropenia is not None,
            "clinical": bool(self.options),
        }
        if not need[self.kind]:
            raise ValueError(f"term {self.id!r} of kind {self.kind!r} lacks its grade table")
        if self.baseline_mode != "none" and not self.baseline_rules:
            raise ValueError(f"term {self.id!r}: baseline_mode needs baseline_rules")
        ids = [o.id for o in self.options]
        if len(ids) != len(set(ids)):
            raise ValueError(f"term {self.id!r}: option ids must be unique")
        defined = set(self.grades)
        for grade in self.not_defined:
            if grade in defined:
                raise ValueError(f"term {self.id!r}: grade {grade} is both defined and not defined")
        rules = [
            *self.uln_rules,
            *self.baseline_rules,
            *self.stools_rules,
            *(r for rs in self.rules_by_unit.values() for r in rs),
            *(self.fever.rules_c if self.fever else ()),
        ]
        for grade in {*(r.result for r in rules), *(o.grade for o in self.options)}:
            if grade not in defined:
                raise ValueError(f"term {self.id!r}: grade {grade} is used but has no description")
        return self


class Conventions(ToxModel):
    semicolon_alternatives: SourceRef
    below_lln_gate: SourceRef
    unsigned_end_inclusive: SourceRef


class CtcaeFile(ToxFile):
    ctcae_version: str
    conventions: Conventions
    terms: tuple[Term, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> CtcaeFile:
        seen: dict[str, str] = {}
        for term in self.terms:
            for name in (term.id, *term.aliases):
                key = _key(name)
                if key in seen:
                    raise ValueError(f"term name {name!r} used by {seen[key]!r} and {term.id!r}")
                seen[key] = term.id
        return self


@cache
def load_ctcae() -> CtcaeFile:
    """``ctcae-v5.yaml``, validated once per process.

    Raises:
        DataFileError: the file is invalid.
    """
    return load_data_file(CtcaeFile, "ctcae-v5.yaml")


def _key(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").replace("/", " ").split())


def find_term(term: str) -> Term:
    """The term for an id or alias (case, spaces and hyphens ignored).

    Raises:
        InputError: the term is unknown (``where="term"``), listing the known ids.
    """
    data = load_ctcae()
    if not isinstance(term, str) or not term.strip():
        raise InputError(f"must be a CTCAE term id, got {term!r}", where="term")
    key = _key(term)
    for spec in data.terms:
        if key in {_key(spec.id), *(_key(a) for a in spec.aliases)}:
            return spec
    known = ", ".join(t.id for t in data.terms)
    raise InputError(f"unknown CTCAE term {term!r}", where="term", hint=f"known terms: {known}")


def ctcae_terms() -> list[dict[str, object]]:
    """The gradable terms with their kind and selectable options (for forms and the CLI)."""
    return [
        {
            "id": t.id,
            "name": t.name,
            "kind": t.kind,
            "meddra": t.meddra,
            "options": [{"id": o.id, "grade": o.grade, "text": o.text} for o in t.options],
        }
        for t in load_ctcae().terms
    ]


class CtcaeGrade(BaseModel):
    """The CTCAE v5.0 grade of one term at one time point."""

    model_config = ConfigDict(extra="forbid")

    term: str
    name: str
    meddra: str
    soc: str
    ctcae_version: str
    grade: int = Field(ge=0, le=5, description="0 when no CTCAE grade is met.")
    grade_text: str
    at_least: bool = Field(default=False, description="True when missing information could raise it.")
    column: Column | None = None
    ratio: float | None = Field(default=None, description="Multiple of ULN or baseline that set the grade.")
    value: float | None = Field(default=None, description="The graded value, after unit conversion.")
    unit: str | None = None
    basis: list[str] = Field(description="Why this grade, in words.")
    not_defined_grades: list[int]
    needs: list[str] = Field(default_factory=list, description="What would settle or raise the grade.")
    notes: list[str] = Field(default_factory=list)
    sources: list[SourceInfo]
    unconfirmed: bool


_NO_GRADE = "No CTCAE grade met"
_OP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _ratio(value: float, ref: float) -> float:
    """value / ref, rounded to 9 decimals so 120/40 is exactly 3.0 at a boundary."""
    return round(value / ref, 9)


def _rule_words(rule: Rule | None, what: str) -> str:
    return f"{_OP[rule.op]} {rule.value:g} {what}" if rule else f"below the grade 1 limit ({what})"


def grade_ctcae(
    term: str,
    *,
    value: float | None = None,
    unit: str | None = None,
    uln: float | None = None,
    lln: float | None = None,
    baseline: float | None = None,
    temperature: float | None = None,
    temperature_unit: str = "Cel",
    hours_above_40: float | None = None,
    anc: float | None = None,
    anc_unit: str = "10*9/L",
    hours_at_or_above_38: float | None = None,
    stools_above_baseline: float | None = None,
    bsa_percent: float | None = None,
    symptoms: Symptoms | None = None,
    options: Sequence[str] = (),
) -> CtcaeGrade:
    """Grade one CTCAE v5.0 term.

    Inputs by term kind (anything else given raises, so a misplaced input is never ignored):

    * ALT / AST / bilirubin / creatinine: ``value``, ``uln`` (same unit, any), optional
      ``baseline`` (same unit) and ``unit`` (for display).
    * neutrophils / platelets / lymphocytes / white cells: ``value`` and ``lln`` in ``unit``
      (default 10^9/L; /uL, /mm3 and 10^3/uL are converted).
    * anaemia: ``value`` and ``lln`` in ``unit`` (g/dL default, g/L or mmol/L graded on CTCAE's
      own columns); ``options`` ``transfusion_indicated``, ``life_threatening``, ``death``.
    * fever: ``temperature`` in ``temperature_unit`` (Cel or [degF]); ``hours_above_40`` when
      above 40.0 degrees C; option ``death``.
    * febrile neutropenia: ``anc`` (``anc_unit``), the highest single ``temperature`` and
      ``hours_at_or_above_38`` (sustained); options ``life_threatening``, ``death``.
    * diarrhoea: ``options`` and/or ``stools_above_baseline`` (per day); rash: ``options`` and/or
      ``bsa_percent`` with ``symptoms`` (none, mild, moderate, severe); colitis, pneumonitis,
      fatigue: ``options`` (see :func:`ctcae_terms`). Several findings: the highest grade wins.

    Args:
        term: term id or alias (``alt``, ``neutrophil_count_decreased``, ``fever``, ...).
        value: lab value.
        unit: unit of ``value``, ``lln`` (counts, haemoglobin) or of value/uln/baseline (display).
        uln: the reporting lab's upper limit of normal.
        lln: the reporting lab's lower limit of normal.
        baseline: the patient's baseline value (which sample is baseline is a local choice).
        temperature: body temperature.
        temperature_unit: ``Cel`` (default) or ``[degF]``.
        hours_above_40: hours above 40.0 degrees C (fever grade 3 vs 4).
        anc: absolute neutrophil count (febrile neutropenia).
        anc_unit: unit of ``anc``.
        hours_at_or_above_38: hours the temperature stayed at or above 38.0 degrees C.
        stools_above_baseline: stools per day above baseline (diarrhoea).
        bsa_percent: body-surface area covered, percent (rash).
        symptoms: rash symptom severity.
        options: clinician-selected finding ids.

    Returns:
        :class:`CtcaeGrade`, with ``ctcae_version`` "5.0", sources and the unconfirmed flag.

    Raises:
        InputError: unknown term (``term``), unknown option (``options``), a missing required
            input, an input the term does not use, a negative or implausible value; the error
            names the field.
        UnitError: an unknown or unconvertible unit.

    Source:
        NCI CTCAE v5.0 (27 Nov 2017), workbook CTCAE_v5.0.xlsx, via clinical-reference.md 6a.
    """
    data = load_ctcae()
    spec = find_term(term)
    given = {
        "value": value,
        "unit": unit,
        "uln": uln,
        "lln": lln,
        "baseline": baseline,
        "temperature": temperature,
        "hours_above_40": hours_above_40,
        "anc": anc,
        "hours_at_or_above_38": hours_at_or_above_38,
        "stools_above_baseline": stools_above_baseline,
        "bsa_percent": bsa_percent,
        "symptoms": symptoms,
        "options": tuple(options) or None,
    }
    allowed = {
        "increase_x_uln": {"value", "unit", "uln", "baseline"},
        "decrease_below_lln": {"value", "unit", "lln"} | ({"options"} if spec.options else set()),
        "fever": {"temperature", "hours_above_40", "options"},
        "febrile_neutropenia": {"anc", "temperature", "hours_at_or_above_38", "options"},
        "clinical": {"options"}
        | ({"stools_above_baseline"} if spec.stools_rules else set())
        | ({"bsa_percent", "symptoms"} if spec.rash else set()),
    }[spec.kind]
    for name, given_value in given.items():
        if given_value is not None and name not in allowed:
            raise InputError(
                f"is not used to grade {spec.id}",
                where=name,
                hint=f"{spec.id} takes {', '.join(sorted(allowed))}",
            )
    chosen = _options(spec, options)
    if spec.kind == "increase_x_uln":
        return _increase(data, spec, value, uln, baseline, unit)
    if spec.kind == "decrease_below_lln":
        return _decrease(data, spec, value, lln, unit, chosen)
    if spec.kind == "fever":
        return _fever(data, spec, temperature, temperature_unit, hours_above_40, chosen)
    if spec.kind == "febrile_neutropenia":
        return _febrile_neutropenia(
            data, spec, anc, anc_unit, temperature, temperature_unit, hours_at_or_above_38, chosen
        )
    return _clinical(data, spec, chosen, stools_above_baseline, bsa_percent, symptoms)


def _options(spec: Term, ids: Sequence[str]) -> list[Option]:
    if isinstance(ids, str):
        ids = [ids]
    by_id = {o.id: o for o in spec.options}
    chosen = []
    for option_id in ids:
        if option_id not in by_id:
            known = ", ".join(by_id) or "none"
            raise InputError(
                f"unknown option {option_id!r} for {spec.id}", where="options", hint=f"options: {known}"
            )
        chosen.append(by_id[option_id])
    return chosen


def _result(
    data: CtcaeFile,
    spec: Term,
    grade: int,
    used: Sequence[SourceRef],
    basis: list[str],
    *,
    column: Column | None = None,
    ratio: float | None = None,
    value: float | None = None,
    unit: str | None = None,
    notes: Sequence[str] = (),
    at_least: bool = False,
    needs: Sequence[str] = (),
) -> CtcaeGrade:
    sources = [spec.source, *used]
    return CtcaeGrade(
        term=spec.id,
        name=spec.name,
        meddra=spec.meddra,
        soc=spec.soc,
        ctcae_version=data.ctcae_version,
        grade=grade,
        grade_text=spec.grades.get(grade, _NO_GRADE) if grade else _NO_GRADE,
        at_least=at_least,
        column=column,
        ratio=ratio,
        value=value,
        unit=unit,
        basis=basis,
        not_defined_grades=sorted(spec.not_defined),
        needs=list(needs),
        notes=[*notes, *spec.notes],
        sources=dedupe_sources([cite(data, s) for s in sources]),
        unconfirmed=not all(s.verification.confirmed for s in sources),
    )


def _required(value: float | None, field: str, what: str) -> float:
    if value is None:
        raise InputError(f"is required to grade {what}", where=field)
    return check_number(value, field)


def _increase(
    data: CtcaeFile,
    spec: Term,
    value: float | None,
    uln: float | None,
    baseline: float | None,
    unit: str | None,
) -> CtcaeGrade:
    x = _required(value, "value", spec.id)
    upper = _required(uln, "uln", spec.id)
    check_number(upper, "uln", allow_low=False)
    used: list[SourceRef] = []
    notes: list[str] = []
    base = None if baseline is None else check_number(baseline, "baseline")
    uln_ratio = _ratio(x, upper)
    uln_grade, uln_rule = apply_rules(spec.uln_rules, uln_ratio)
    if uln_rule and uln_rule.source:
        used.append(uln_rule.source)

    if spec.baseline_mode == "if_abnormal":
        if base is None or base <= upper:
            if base is None:
                notes.append(
                    "Baseline not given: graded on ULN multiples (the column for a normal baseline)."
                )
            basis = [
                f"baseline {'normal' if base is not None else 'unknown'}: "
                f"{uln_ratio:g} x ULN ({_rule_words(uln_rule, 'x ULN')})"
            ]
            return _result(
                data,
                spec,
                uln_grade,
                used,
                basis,
                column="uln",
                ratio=uln_ratio,
                value=x,
                unit=unit,
                notes=notes,
            )
        check_number(base, "baseline", allow_low=False)
        b_ratio = _ratio(x, base)
        b_grade, b_rule = apply_rules(spec.baseline_rules, b_ratio)
        if b_rule and b_rule.source:
            used.append(b_rule.source)
        if b_grade == 0 and b_ratio > 1.0 and spec.baseline_gap_source is not None:
            used.append(spec.baseline_gap_source)
            notes.append(
                "Above the abnormal baseline but under the grade 1 multiple: no grade is "
                "defined; reported as grade 0 (reading unconfirmed)."
            )
        basis = [
            f"baseline abnormal ({base:g} > ULN {upper:g}): {b_ratio:g} x baseline "
            f"({_rule_words(b_rule, 'x baseline')})"
        ]
        return _result(
            data,
            spec,
            b_grade,
            used,
            basis,
            column="baseline",
            ratio=b_ratio,
            value=x,
            unit=unit,
            notes=notes,
        )

    # alternative mode (creatinine): ULN criterion and, if a baseline is given, baseline criterion
    basis = [f"{uln_ratio:g} x ULN ({_rule_words(uln_rule, 'x ULN')}): grade {uln_grade}"]
    grade, ratio = uln_grade, uln_ratio
    column: Column = "uln"
    if base is None:
        notes.append("Baseline not given: the baseline criterion (grades 2-3) was not assessed.")
    else:
        check_number(base, "baseline", allow_low=False)
        b_ratio = _ratio(x, base)
        b_grade, b_rule = apply_rules(spec.baseline_rules, b_ratio)
        basis.append(f"{b_ratio:g} x baseline ({_rule_words(b_rule, 'x baseline')}): grade {b_grade}")
        if b_grade > uln_grade:
            grade, column, ratio = b_grade, "baseline", b_ratio
            if spec.alternative_source is not None:
                used.append(spec.alternative_source)
    at_least = base is None and grade < 3
    needs = ["the baseline value (grades 2-3 may also be met on baseline multiples)"] if at_least else []
    return _result(
        data,
        spec,
        grade,
        used,
        basis,
        column=column,
        ratio=ratio,
        value=x,
        unit=unit,
        notes=notes,
        at_least=at_least,
        needs=needs,
    )


_COUNT_MAX = {"10*9/L": 1_000.0, "g/dL": 30.0, "g/L": 300.0, "mmol/L": 20.0}


def _decrease(
    data: CtcaeFile,
    spec: Term,
    value: float | None,
    lln: float | None,
    unit: str | None,
    chosen: list[Option],
) -> CtcaeGrade:
    assert spec.unit is not None
    used: list[SourceRef] = [data.conventions.below_lln_gate]
    basis: list[str] = []
    lab_grade = 0
    column_unit = spec.unit
    x: float | None = None
    if value is not None or not chosen:
        raw = _required(value, "value", spec.id)
        low = _required(lln, "lln", spec.id)
        given_unit = unit or spec.unit
        code = ucum(given_unit, "unit")
        if code in spec.rules_by_unit:
            column_unit, x, limit = code, raw, low
        else:
            x = convert(raw, given_unit, spec.unit, field="unit")
            limit = convert(low, given_unit, spec.unit, field="unit")
        check_number(x, "value", high=_COUNT_MAX.get(column_unit), unit=column_unit)
        check_number(limit, "lln", high=_COUNT_MAX.get(column_unit), unit=column_unit, allow_low=False)
        if x >= limit:
            basis.append(f"{x:g} {column_unit} is at or above the LLN {limit:g}: grade 0")
        else:
            lab_grade, rule = apply_rules(spec.rules_by_unit[column_unit], x, default=1)
            basis.append(
                f"{x:g} {column_unit} below the LLN {limit:g}; "
                + (_rule_words(rule, column_unit) if rule else "grade 1 band")
            )
    grade = lab_grade
    for option in chosen:
        basis.append(f"option {option.id}: grade {option.grade}")
        grade = max(grade, option.grade)
    needs = []
    if spec.options and grade < 3:
        needs.append("clinical findings for higher grades: " + ", ".join(o.id for o in spec.options))
    column: Column = "lln" if x is not None and grade == lab_grade else "options"
    return _result(
        data,
        spec,
        grade,
        used,
        basis,
        column=column,
        value=x,
        unit=column_unit if x is not None else None,
        needs=needs,
    )


def _celsius(temperature: float, unit: str, field: str) -> float:
    check_number(temperature, field, low=-1e9)
    celsius = round(convert(temperature, unit, "Cel", field=f"{field}_unit"), 3)
    if not 25.0 <= celsius <= 45.0:
        raise InputError(
            f"{temperature:g} {unit} is not a plausible body temperature (25-45 degrees C)", where=field
        )
    return celsius


def _fever(
    data: CtcaeFile,
    spec: Term,
    temperature: float | None,
    unit: str,
    hours: float | None,
    chosen: list[Option],
) -> CtcaeGrade:
    assert spec.fever is not None
    basis: list[str] = []
    needs: list[str] = []
    grade = 0
    celsius: float | None = None
    at_least = False
    if temperature is not None or not chosen:
        celsius = _celsius(_required(temperature, "temperature", spec.id), unit, "temperature")
        grade, rule = apply_rules(spec.fever.rules_c, celsius)
        basis.append(f"{celsius:g} degrees C: " + (_rule_words(rule, "degrees C") if rule else "below 38.0"))
        if grade == 3:
            if hours is None:
                at_least = True
                limit = spec.fever.grade4_hours_gt
                needs.append(f"hours above 40.0 degrees C (more than {limit:g} h is grade 4)")
            elif check_number(hours, "hours_above_40") > spec.fever.grade4_hours_gt:
                grade = 4
                basis.append(f"above 40.0 degrees C for {hours:g} h (> {spec.fever.grade4_hours_gt:g} h)")
            else:
                basis.append(f"above 40.0 degrees C for {hours:g} h (<= {spec.fever.grade4_hours_gt:g} h)")
        elif hours is not None:
            raise InputError("applies only above 40.0 degrees C", where="hours_above_40")
    for option in chosen:
        basis.append(f"option {option.id}: grade {option.grade}")
        grade = max(grade, option.grade)
        at_least = False
    return _result(
        data,
        spec,
        grade,
        [],
        basis,
        column="celsius",
        value=celsius,
        unit="Cel" if celsius is not None else None,
        at_least=at_least,
        needs=needs,
    )


def _febrile_neutropenia(
    data: CtcaeFile,
    spec: Term,
    anc: float | None,
    anc_unit: str,
    temperature: float | None,
    unit: str,
    hours: float | None,
    chosen: list[Option],
) -> CtcaeGrade:
    fn = spec.febrile_neutropenia
    assert fn is not None
    basis: list[str] = []
    grade = 0
    count: float | None = None
    if anc is not None or temperature is not None or hours is not None or not chosen:
        raw = _required(anc, "anc", spec.id)
        count = check_number(convert(raw, anc_unit, "10*9/L", field="anc_unit"), "anc", high=1_000.0)
        celsius = _celsius(_required(temperature, "temperature", spec.id), unit, "temperature")
        sustained = 0.0 if hours is None else check_number(hours, "hours_at_or_above_38")
        neutropenic = count < fn.anc_10e9_l_lt
        single = celsius > fn.single_temperature_c_gt
        held = celsius >= fn.sustained_temperature_c_ge and sustained > fn.sustained_hours_gt
        basis.append(f"ANC {count:g} x10^9/L {'<' if neutropenic else '>='} {fn.anc_10e9_l_lt:g}")
        basis.append(
            f"highest temperature {celsius:g} degrees C "
            f"{'>' if single else '<='} {fn.single_temperature_c_gt:g}; "
            f">= {fn.sustained_temperature_c_ge:g} for {sustained:g} h "
            f"({'more' if held else 'not more'} than {fn.sustained_hours_gt:g} h)"
        )
        if neutropenic and (single or held):
            grade = 3
    for option in chosen:
        basis.append(f"option {option.id}: grade {option.grade}")
        grade = max(grade, option.grade)
    notes = [] if grade else ["Criteria for febrile neutropenia not met (grades 1-2 are not defined)."]
    return _result(
        data,
        spec,
        grade,
        [],
        basis,
        column="criteria",
        value=count,
        unit="10*9/L" if count is not None else None,
        notes=notes,
    )


def _clinical(
    data: CtcaeFile,
    spec: Term,
    chosen: list[Option],
    stools: float | None,
    bsa: float | None,
    symptoms: Symptoms | None,
) -> CtcaeGrade:
    basis: list[str] = []
    findings: list[tuple[int, str]] = []  # (grade, text of the alternative that set it)
    for option in chosen:
        findings.append((option.grade, option.text))
        basis.append(f"option {option.id}: grade {option.grade}")
    if stools is not None:
        n = check_number(stools, "stools_above_baseline", high=100.0, unit="stools/day")
        got, rule = apply_rules(spec.stools_rules, n)
        basis.append(f"{n:g} stools/day above baseline: grade {got}")
        if got:
            findings.append((got, _rule_words(rule, "stools/day above baseline")))
    if bsa is not None or symptoms is not None:
        assert spec.rash is not None
        pct = check_number(_required(bsa, "bsa_percent", spec.id), "bsa_percent", high=100.0, unit="%")
        if symptoms is None:
            if pct > spec.rash.grade2_bsa_le:
                raise InputError(
                    f"is required when the rash covers more than {spec.rash.grade2_bsa_le:g}% BSA",
                    where="symptoms",
                )
        elif symptoms not in ("none", "mild", "moderate", "severe"):
            raise InputError(f"must be none, mild, moderate or severe, got {symptoms!r}", where="symptoms")
        if pct == 0:
            got = 0
        elif pct < spec.rash.grade1_bsa_lt:
            got = 1
        elif pct <= spec.rash.grade2_bsa_le:
            got = 2
        else:
            got = 3 if symptoms in spec.rash.severe_symptoms else 2
        basis.append(f"{pct:g}% BSA, symptoms {symptoms or 'not given'}: grade {got}")
        if got:
            findings.append((got, f"{pct:g}% BSA"))
    if not findings and not basis:
        raise InputError(
            f"no finding given for {spec.id}",
            where="options",
            hint="pass options"
            + (", stools_above_baseline" if spec.stools_rules else "")
            + (", bsa_percent and symptoms" if spec.rash else ""),
        )
    grade = max((g for g, _ in findings), default=0)
    used: list[SourceRef] = []
    notes: list[str] = []
    if grade:
        text = spec.grades[grade]
        setters = [t for g, t in findings if g == grade]
        if ";" in text and all(t != text for t in setters):
            used.append(data.conventions.semicolon_alternatives)
            notes.append(
                "The grade rests on one alternative of a grade whose description lists "
                "several (semicolon read as 'or')."
            )
    return _result(data, spec, grade, used, basis, column="options", notes=notes)


def is_defined(term: str, grade: int) -> bool:
    """Whether CTCAE v5.0 defines ``grade`` for ``term`` (e.g. no grade 5 for lab terms).

    Raises:
        InputError: unknown term.
    """
    spec = find_term(term)
    return grade in spec.grades


# ---------------------------------------------------------------------------------------------
# JSON input (``actnav toxicity ctcae --input FILE.json``)
# ---------------------------------------------------------------------------------------------


class CtcaeInput(BaseModel):
    """One CTCAE finding as JSON: ``term`` and the keyword arguments of :func:`grade_ctcae`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    term: str = Field(min_length=1, description="Term id or alias (alt, platelets, fever, rash ...).")
    value: Number | None = None
    unit: str | None = None
    uln: Number | None = None
    lln: Number | None = None
    baseline: Number | None = None
    temperature: Number | None = None
    temperature_unit: str = "Cel"
    hours_above_40: Number | None = None
    anc: Number | None = None
    anc_unit: str = "10*9/L"
    hours_at_or_above_38: Number | None = None
    stools_above_baseline: Number | None = None
    bsa_percent: Number | None = None
    symptoms: Symptoms | None = None
    options: tuple[str, ...] = ()


def grade_ctcae_inputs(document: object) -> list[CtcaeGrade]:
    """Grade one CTCAE input object, or a list of them (``[{"term": "alt", "value": 250, "uln": 40}]``).

    Args:
        document: parsed JSON: an object with ``term`` and the inputs of :func:`grade_ctcae`, or a
            list of such objects.

    Returns:
        One :class:`CtcaeGrade` per object, in order.

    Raises:
        InputError: not an object or a list of objects, an empty list, an unknown key, a value of
            the wrong type, or any error of :func:`grade_ctcae`; ``where`` is the field path
            (``[2].uln`` in a list, ``uln`` for a single object).
    """
    from actnav.toxicity.models import validate_input

    items = document if isinstance(document, list) else [document]
    if not items:
        raise InputError("the list is empty: give at least one {term, ...} object")
    results: list[CtcaeGrade] = []
    for index, item in enumerate(items):
        prefix = f"[{index}]" if isinstance(document, list) else ""
        if not isinstance(item, dict):
            raise InputError('expected an object {"term": ..., "value": ...}', where=prefix or None)
        data = validate_input(CtcaeInput, item, prefix=prefix)
        fields = data.model_dump(exclude={"term"})
        try:
            results.append(grade_ctcae(data.term, **fields))
        except InputError as exc:
            where = f"{prefix}.{exc.where}" if prefix and exc.where else (exc.where or prefix or None)
            raise type(exc)(exc.message, where=where, hint=exc.hint) from exc
    return results
