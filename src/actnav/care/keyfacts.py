"""Key facts entered by hand, and the FHIR R4 Bundle that carries them into actnav.

A patient without a FHIR export can be registered from the key facts the rules use: birth date,
diagnosis, disease course, prior therapies, transplants, performance status, labs, biomarkers and
a few assessments. :class:`KeyFacts` validates them; :func:`keyfacts_to_bundle` writes them as a
FHIR R4 Bundle in exactly the representation ``docs/fhir-input.md`` documents, and that bundle is
read back by the same importer as any upload (:func:`actnav.patient.fhir.patient_from_bundle`),
so there is one reading of a record and one evaluation path.

Nothing is inferred. Everything but the birth date and the diagnosis is optional, and a fact that
was not entered is absent from the bundle, so the rules report it as unknown ("needs information")
rather than assume it. A prior therapy without an end date is written as ongoing (an open period),
which keeps a washout from being met on a guess.

Codes come from the terminology tables (``data/terminology/``): LOINC codes of labs.yaml and
observations.yaml, coded answers of observations.yaml, RxNorm ingredient codes of drugs.yaml, the
transplant code of drugs.yaml, and for the diagnosis (:func:`diagnosis_codings`) the ICD-10-CM and
ICD-O-3 codes of diagnoses.yaml plus actnav's local code for the concept; units are UCUM codes of
units.yaml.

Validation happens in two steps (:func:`parse_keyfacts`): the model checks each value (known
diagnosis, drug or regimen names the terminology recognises, HLA-A allele names, units that
convert to the analyte's unit, values inside the plausible range of labs.yaml, dates not after the
evaluation date, an age inside the plausible range), then the dates are checked against the birth
date. Every problem names its field (``labs.platelets``, ``birth_date``).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from actnav.errors import DataFileError, InputError, UnitError
from actnav.patient import terminology as term
from actnav.patient.models import DiseaseStatus, FindingValue, Sex, TransplantType

#: The human labels of the disease statuses the importer reads (mCODE CancerDiseaseStatus values
#: and actnav's local relapse/refractory codes; docs/fhir-input.md, disease course).
STATUS_LABELS: dict[str, str] = {
    "relapse": "Relapse",
    "refractory": "Refractory",
    "progression": "Progression",
    "stable": "Stable disease",
    "response": "Response (improved, partial remission)",
    "complete_remission": "Complete remission",
}

#: The labs the key facts carry: the analyte keys of labs.yaml whose facts the rules use.
LAB_KEYS: tuple[str, ...] = (
    "anc",
    "platelets",
    "alc",
    "hemoglobin",
    "creatinine",
    "creatinine_clearance",
    "bilirubin",
    "alt",
    "ast",
    "lvef",
    "spo2",
)


# -- errors --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One invalid key fact: where (``("labs", "platelets")``) and why."""

    loc: tuple[str | int, ...]
    message: str

    @property
    def field(self) -> str:
        """The dotted field name (``labs.platelets``, ``therapies.0.start``)."""
        return ".".join(str(p) for p in self.loc) or "key facts"


class KeyFactsError(InputError):
    """The key facts are invalid; ``problems`` lists every field and why (exit code 2)."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems) or "invalid key facts")


# -- value checks --------------------------------------------------------------------------------


def _as_of(info: ValidationInfo) -> dt.date | None:
    context = info.context
    value = context.get("as_of") if isinstance(context, Mapping) else None
    return value if isinstance(value, dt.date) else None


def _no_number(value: object) -> object:
    # A number is never read as a date (pydantic would take it as a Unix timestamp).
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected a date like 1990-05-04, got a number")
    return value


def _not_after_as_of(value: dt.date, info: ValidationInfo) -> dt.date:
    as_of = _as_of(info)
    if as_of is not None and value > as_of:
        raise ValueError(f"{value.isoformat()} is after the evaluation date {as_of.isoformat()}")
    return value


#: A calendar date (``YYYY-MM-DD``), not after the evaluation date when one is given in the
#: validation context (``{"as_of": date}``).
Day = Annotated[dt.date, BeforeValidator(_no_number), AfterValidator(_not_after_as_of)]


def _one_line(text: str) -> str:
    # A NUL cannot be stored in PostgreSQL JSON; line breaks and tabs have no place in a name.
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise ValueError("control characters (line breaks, tabs) are not allowed")
    return text


#: One line of text, 1 to 200 characters.
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_one_line)
]


def _hla_allele(written: str) -> str:
    locus = term.hla_table().locus
    for option in written.split("/"):
        option = option.strip()
        call = term.hla_p_group(option if "*" in option else f"{locus}*{option}")
        if call.locus is None:
            raise ValueError(f"{option!r} is not an HLA allele name (write e.g. {locus}*02:01)")
        if call.locus != locus:
            raise ValueError(f"{option!r} is not an HLA-{locus} allele")
    return written


HlaAlleleName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60), AfterValidator(_hla_allele)
]


def lab_in_canonical_unit(key: str, value: float, unit: str | None) -> float:
    """``value`` in ``unit`` converted to the analyte's canonical unit (labs.yaml).

    Args:
        key: the analyte key (``platelets``).
        value: the number as entered.
        unit: a UCUM code or a spelling listed in units.yaml; None for the canonical unit.

    Raises:
        UnitError: the unit is unknown or does not convert to the analyte's unit.
    """
    canonical = term.analyte(key).unit
    return to_canonical(value, unit or canonical, canonical, key)


def to_canonical(value: float, unit: str, canonical: str, key: str) -> float:
    """:func:`actnav.patient.units.to_unit` for an entered value (where: the analyte key).

    Raises:
        UnitError: the unit is unknown or does not convert (also when pint refuses the
            arithmetic, as for a temperature through a molar mass).
    """
    from actnav.patient.units import to_unit

    try:
        return to_unit(value, unit, canonical, key, analyte=key)
    except TypeError:  # pint's OffsetUnitCalculusError: Cel times g/mol
        raise UnitError(f"cannot convert {unit!r} to {canonical!r}", where=key) from None


# -- the key facts -------------------------------------------------------------------------------


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DiseaseStatusEntry(_Facts):
    """A dated statement about the course of the cancer (a relapse, refractory disease...)."""

    status: DiseaseStatus = Field(description="relapse, refractory, progression, stable, response or "
                                  "complete_remission.")  # fmt: skip
    date: Day = Field(description="When it was observed (each dated relapse counts as one relapse).")


class TherapyEntry(_Facts):
    """A prior systemic therapy: a drug or regimen acronym drugs.yaml recognises, with its dates."""

    name: Text = Field(description="Drug (INN or brand name) or regimen acronym: R-CHOP, blinatumomab.")
    start: Day = Field(description="First day of the therapy.")
    end: Day | None = Field(default=None, description="Last day; empty while the therapy is ongoing.")
    line: int | None = Field(
        default=None, ge=1, le=30, description="Line of therapy, when known; else lines are counted."
    )

    @field_validator("name")
    @classmethod
    def _recognised(cls, name: str) -> str:
        if not term.match_drug([], [name]).agents:
            raise ValueError(f"{name!r} is not a drug or regimen actnav recognises (drugs.yaml)")
        return name

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: dt.date | None, info: ValidationInfo) -> dt.date | None:
        start = info.data.get("start")
        if end is not None and isinstance(start, dt.date) and end < start:
            raise ValueError(f"the end {end.isoformat()} is before the start {start.isoformat()}")
        return end


class TransplantEntry(_Facts):
    """A prior haematopoietic stem cell transplant."""

    type: TransplantType = Field(description="autologous, allogeneic or unknown.")
    date: Day | None = None


class LabEntry(_Facts):
    """One laboratory or measurement result."""

    value: float
    unit: str | None = Field(
        default=None,
        max_length=40,
        description="UCUM code or a spelling listed in units.yaml (10*9/L, x10^9/L, g/dL, mg/dL, "
        "umol/L, U/L, %, mL/min); default: the analyte's canonical unit.",
    )
    date: Day
    upper_limit_normal: float | None = Field(
        default=None, gt=0, description="The laboratory's upper limit of normal, in the same unit."
    )


class Labs(_Facts):
    """Key labs, each in the unit given (converted and range-checked with labs.yaml)."""

    anc: LabEntry | None = Field(default=None, description="Absolute neutrophil count (10*9/L).")
    platelets: LabEntry | None = Field(default=None, description="Platelet count (10*9/L).")
    alc: LabEntry | None = Field(default=None, description="Absolute lymphocyte count (10*9/L).")
    hemoglobin: LabEntry | None = Field(default=None, description="Haemoglobin (g/dL).")
    creatinine: LabEntry | None = Field(default=None, description="Serum creatinine (mg/dL).")
    creatinine_clearance: LabEntry | None = Field(default=None, description="Creatinine clearance (mL/min).")
    bilirubin: LabEntry | None = Field(default=None, description="Total bilirubin (mg/dL).")
    alt: LabEntry | None = Field(default=None, description="ALT (U/L), with its upper limit of normal.")
    ast: LabEntry | None = Field(default=None, description="AST (U/L), with its upper limit of normal.")
    lvef: LabEntry | None = Field(default=None, description="Left ventricular ejection fraction (%).")
    spo2: LabEntry | None = Field(default=None, description="Oxygen saturation (%).")

    @field_validator("*")
    @classmethod
    def _plausible(cls, result: LabEntry | None, info: ValidationInfo) -> LabEntry | None:
        if result is None or info.field_name is None:
            return result
        key = info.field_name
        for number, what in ((result.value, ""), (result.upper_limit_normal, "upper limit of normal: ")):
            if number is None:
                continue
            try:
                converted = lab_in_canonical_unit(key, number, result.unit)
            except UnitError as err:
                raise ValueError(f"{what}{err.message}" + (f" ({err.hint})" if err.hint else "")) from None
            problem = term.implausible(key, converted)
            if problem is not None:
                raise ValueError(f"{what}{problem}")
        return result


class PerformanceStatus(_Facts):
    """ECOG performance status (0-5) and the day it was assessed."""

    value: int
    date: Day

    @field_validator("value")
    @classmethod
    def _in_scale(cls, value: int) -> int:
        problem = term.implausible("ecog", float(value))
        if problem is not None:
            raise ValueError(problem)
        return value


class QualitativeResult(_Facts):
    """A qualitative result: positive, negative or indeterminate."""

    result: FindingValue
    date: Day | None = None


class AssessmentEntry(_Facts):
    """A yes/no clinical assessment (true: present) and its date."""

    present: bool
    date: Day | None = None


class CurrentAssessmentEntry(_Facts):
    """A yes/no assessment whose date matters (a pregnancy status is current for 7 days)."""

    present: bool
    date: Day


class HlaTyping(_Facts):
    """HLA-A typing: one or two alleles (``A*02:01``, ``HLA-A*24:02``, ``A*02``)."""

    alleles: list[HlaAlleleName] = Field(min_length=1, max_length=2)
    date: Day | None = None


class BrafV600(_Facts):
    """Tumour BRAF V600 mutation status, and the amino-acid change when one was found."""

    result: FindingValue = Field(description="positive: a V600 mutation was found.")
    variant: str | None = Field(
        default=None, max_length=20, description="The change found (p.V600E, V600K); only when positive."
    )
    date: Day | None = None

    @field_validator("variant")
    @classmethod
    def _hotspot_change(cls, variant: str | None, info: ValidationInfo) -> str | None:
        if variant is None or not variant.strip():
            return None
        gene = _braf()
        m = re.fullmatch(rf"\s*(?:p\.)?{re.escape(gene.hotspot)}([A-Z])\s*", variant, re.IGNORECASE)
        if m is None:
            raise ValueError(
                f"write the {gene.symbol} {gene.hotspot} change as p.{gene.hotspot}E or {gene.hotspot}K"
            )
        if info.data.get("result") != "positive":
            raise ValueError("give the change only when the result is positive")
        return f"p.{gene.hotspot}{m[1].upper()}"


class KeyFacts(_Facts):
    """The key facts of one patient; only the birth date and the diagnosis are required.

    Every other field is optional: what is not entered stays unknown to the rules.
    """

    birth_date: Day
    sex: Sex = "unknown"
    diagnosis: str = Field(
        max_length=60, description="An actnav disease concept id (diagnoses.yaml), e.g. b_all, dlbcl_nos."
    )
    diagnosis_date: Day | None = None
    unresectable_or_metastatic: Literal[True] | None = Field(
        default=None,
        description="true when staging shows unresectable or metastatic disease; leave empty otherwise.",
    )
    disease_course: list[DiseaseStatusEntry] = Field(default_factory=list, max_length=20)
    therapies: list[TherapyEntry] = Field(default_factory=list, max_length=40)
    transplants: list[TransplantEntry] = Field(default_factory=list, max_length=5)
    transplant_ineligible: bool | None = Field(
        default=None, description="The physician's assessment: not eligible for a stem cell transplant."
    )
    ecog: PerformanceStatus | None = None
    labs: Labs = Field(default_factory=Labs)
    hla_a: HlaTyping | None = None
    braf_v600: BrafV600 | None = None
    mage_a4: QualitativeResult | None = Field(default=None, description="MAGE-A4 expression by IHC.")
    cns_involvement: AssessmentEntry | None = Field(default=None, description="Active CNS involvement.")
    active_infection: AssessmentEntry | None = Field(
        default=None, description="Active uncontrolled infection."
    )
    pregnancy: CurrentAssessmentEntry | None = Field(default=None, description="Pregnancy status (current).")
    hiv: QualitativeResult | None = Field(default=None, description="HIV screening.")
    hbv: QualitativeResult | None = Field(default=None, description="Hepatitis B screening (HBsAg).")
    hcv: QualitativeResult | None = Field(default=None, description="Hepatitis C screening (HCV RNA).")

    @field_validator("birth_date")
    @classmethod
    def _plausible_age(cls, birth: dt.date, info: ValidationInfo) -> dt.date:
        as_of = _as_of(info)
        if as_of is None:
            return birth
        from actnav.eligibility.facts import age_in_years

        age = age_in_years(birth, as_of)
        bound = term.analyte("age_years").plausible
        if not bound.min <= age <= bound.max:
            raise ValueError(
                f"gives an age of {age} years on {as_of.isoformat()}; the plausible range is "
                f"{bound.min:g} to {bound.max:g} years"
            )
        return birth

    @field_validator("diagnosis")
    @classmethod
    def _known_diagnosis(cls, concept: str) -> str:
        if concept not in disease_concepts():
            raise ValueError(f"{concept!r} is not a diagnosis actnav knows (concept ids of diagnoses.yaml)")
        return concept


def parse_keyfacts(data: object, *, as_of: dt.date) -> KeyFacts:
    """Validate key facts (a JSON object or form data already shaped like :class:`KeyFacts`).

    Args:
        data: the key facts (``{"birth_date": "1992-06-14", "diagnosis": "b_all", ...}``).
        as_of: the evaluation date: no date may lie after it.

    Returns:
        The validated key facts.

    Raises:
        KeyFactsError: every invalid field, each with its location and reason; dates before the
            birth date are reported once the fields themselves are valid.
    """
    try:
        facts = KeyFacts.model_validate(data, context={"as_of": as_of})
    except ValidationError as exc:
        raise KeyFactsError(
            [Problem(tuple(e["loc"]), str(e["msg"]).removeprefix("Value error, ")) for e in exc.errors()]
        ) from None
    problems = [
        Problem(loc, f"{when.isoformat()} is before the birth date {facts.birth_date.isoformat()}")
        for loc, when in _dates(facts)
        if when < facts.birth_date
    ]
    if problems:
        raise KeyFactsError(problems)
    return facts


def _dates(facts: KeyFacts) -> list[tuple[tuple[str | int, ...], dt.date]]:
    """Every date of the key facts but the birth date, with its location."""
    found: list[tuple[tuple[str | int, ...], dt.date | None]] = [(("diagnosis_date",), facts.diagnosis_date)]
    found += [(("disease_course", i, "date"), e.date) for i, e in enumerate(facts.disease_course)]
    found += [(("therapies", i, "start"), t.start) for i, t in enumerate(facts.therapies)]
    found += [(("transplants", i, "date"), t.date) for i, t in enumerate(facts.transplants)]
    found += [(("labs", key, "date"), r.date) for key in LAB_KEYS if (r := getattr(facts.labs, key))]
    for name in ("ecog", "hla_a", "braf_v600", "mage_a4", "cns_involvement", "active_infection", "pregnancy",
                 "hiv", "hbv", "hcv"):  # fmt: skip
        item = getattr(facts, name)
        if item is not None:
            found.append(((name, "date"), item.date))
    return [(loc, when) for loc, when in found if when is not None]


# -- terminology lookups ---------------------------------------------------------------------------


@cache
def disease_concepts() -> dict[str, str]:
    """The disease concepts of diagnoses.yaml a diagnosis may be: id -> label, in file order."""
    return {c.id: c.label for c in term.diagnoses().concepts if c.kind == "disease"}


def _uri(key: str) -> str:
    for system in term.code_systems().systems:
        if system.key == key:
            return system.uri
    raise DataFileError(f"no code system {key!r}", where="terminology/code-systems.yaml")


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": _uri(system), "code": code}
    if display:
        out["display"] = display
    return out


def _code_title(display: str) -> str:
    """A table display without actnav's trailing remark: ``"Acute lymphoblastic leukemia (lineage
    from histology)"`` -> ``"Acute lymphoblastic leukemia"`` (the remark is not the code's title)."""
    return re.sub(r"\s*\([^()]*\)$", "", display)


def diagnosis_codings(concept: str) -> list[dict[str, str]]:
    """The ``Condition.code`` codings for a disease concept, read from diagnoses.yaml.

    * ICD-10-CM: the one code whose table entry names exactly this concept (not an "in relapse"
      code), else the one naming its nearest ancestor that has any (B-ALL -> C91.0, acute
      lymphoblastic leukaemia, whose lineage ICD-10-CM does not encode); none when several codes
      share the first level that has any (colorectal C18/C19/C20).
    * ICD-O-3 morphology: the one code naming exactly this concept, or among several the one
      "NOS" code (B-ALL -> 9811/3 B lymphoblastic leukemia/lymphoma, NOS); none otherwise.
    * Always actnav's local code for the concept itself (docs/fhir-input.md: every concept id is
      a code of the actnav system), so the concept is exact whatever the standard codes cover.

    Raises:
        KeyError: ``concept`` is not a disease concept of diagnoses.yaml.
    """
    label = disease_concepts()[concept]
    maps = [m for m in term.diagnoses().maps if not m.in_relapse]
    out: list[dict[str, str]] = []
    for ancestor in term.concept_lineage(concept):
        if ancestor not in disease_concepts():
            continue
        icd = [m for m in maps if m.system == "icd10cm" and m.concepts == (ancestor,)]
        if icd:
            if len(icd) == 1:
                out.append(_coding("icd10cm", icd[0].code, _code_title(icd[0].display)))
            break
    morphology = [m for m in maps if m.system == "icdo3" and m.concepts == (concept,)]
    if len(morphology) > 1:
        morphology = [m for m in morphology if m.display.endswith(", NOS")]
    if len(morphology) == 1:
        out.append(_coding("icdo3", morphology[0].code, _code_title(morphology[0].display)))
    out.append(_coding("actnav", concept, label))
    return out


def _observation_code(
    *, kind: str, key: str | None = None, system: str | None = None, display: str | None = None
) -> term.ObservationCode:
    """The first Observation.code of observations.yaml of this kind (and key, system, display)."""
    for o in term.observations().observations:
        wanted = (key is None or o.key == key) and (system is None or o.system == system)
        if o.kind == kind and wanted and (display is None or display in o.display):
            return o
    raise DataFileError(
        f"no observation code of kind {kind!r} key {key!r}", where="terminology/observations.yaml"
    )


def _answer(
    system: str, *, result: str | None = None, status: str | None = None, display: str | None = None
) -> term.Answer:
    """The first coded answer of observations.yaml with this meaning (and display)."""
    for a in term.observations().answers:
        if a.system != system or (display is not None and a.display != display):
            continue
        if (result is not None and a.result == result) or (status is not None and a.status == status):
            return a
    raise DataFileError(f"no {system} answer for {result or status!r}", where="terminology/observations.yaml")


def _concept(code: term.ObservationCode | term.Answer) -> dict[str, Any]:
    """A CodeableConcept of one coding from an observations.yaml entry."""
    return {"coding": [_coding(code.system, code.code, code.display)]}


def _lab_concept(key: str) -> dict[str, Any]:
    """A CodeableConcept of the first LOINC code of labs.yaml that measures ``key``."""
    for code in term.labs().codes:
        if code.key == key:
            return {"coding": [_coding("loinc", code.code, code.display)]}
    raise DataFileError(f"no LOINC code for {key!r}", where="terminology/labs.yaml")


@cache
def _braf() -> term.Gene:
    for gene in term.observations().genes:
        if gene.finding == "braf_v600":
            return gene
    raise DataFileError("no gene for braf_v600", where="terminology/observations.yaml")


# Result words of the qualitative answers (LOINC answer list LL2160-7 and the variant answers).
_POS_NEG = {"positive": "Positive", "negative": "Negative", "indeterminate": "Indeterminate"}
_PRESENT_ABSENT = {"positive": "Present", "negative": "Absent", "indeterminate": "Indeterminate"}
_TRANSPLANT_TEXT = {
    "autologous": "Autologous haematopoietic stem cell transplant",
    "allogeneic": "Allogeneic haematopoietic stem cell transplant",
    "unknown": "Haematopoietic stem cell transplant (type not recorded)",
}


# -- the bundle ----------------------------------------------------------------------------------


class _Bundle:
    def __init__(self, patient_id: str):
        self.patient_id = patient_id
        self.subject = {"reference": f"Patient/{patient_id}"}
        self.entries: list[dict[str, Any]] = []

    def add(self, resource: dict[str, Any]) -> None:
        self.entries.append({"resource": resource})

    def observation(self, rid: str, code: dict[str, Any], when: dt.date | None, **value: Any) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid,
            "status": "final",
            "code": code,
            "subject": self.subject,
        }
        if when is not None:
            resource["effectiveDateTime"] = when.isoformat()
        resource.update(value)
        self.add(resource)


def keyfacts_to_bundle(facts: KeyFacts, *, patient_id: str | None = None) -> dict[str, Any]:
    """Write key facts as a FHIR R4 Bundle (type ``collection``) as docs/fhir-input.md documents.

    Args:
        facts: validated key facts (see :func:`parse_keyfacts`).
        patient_id: the Patient resource id; default a new random UUID (pseudonymous).

    Returns:
        The Bundle as a JSON object: a Patient; a Condition (ICD-10-CM / ICD-O-3 / local codes,
        :func:`diagnosis_codings`); CancerDiseaseStatus Observations (LOINC 97509-4); one
        MedicationStatement per therapy (RxNorm when one agent with an ingredient code is named,
        the name as text, the line-of-therapy extension when given); HSCT Procedures; LOINC
        Observations with UCUM quantities for ECOG and labs; HLA, BRAF, MAGE-A4, serology and
        assessment Observations. A fact not entered writes nothing.

    Raises:
        DataFileError: a code the bundle needs is missing from the terminology tables.
    """
    from actnav.patient.fhir import LINE_OF_THERAPY_URL

    b = _Bundle(patient_id or str(uuid.uuid4()))
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": b.patient_id,
        "birthDate": facts.birth_date.isoformat(),
    }
    if facts.sex != "unknown":
        patient["gender"] = facts.sex
    b.add(patient)

    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": "diagnosis",
        "code": {"coding": diagnosis_codings(facts.diagnosis), "text": disease_concepts()[facts.diagnosis]},
        "subject": b.subject,
    }
    if facts.diagnosis_date is not None:
        condition["onsetDateTime"] = facts.diagnosis_date.isoformat()
    b.add(condition)

    if facts.unresectable_or_metastatic:
        code = _observation_code(kind="unresectable", system="actnav")
        concept = _concept(code)
        concept["text"] = "Unresectable or metastatic disease"
        b.observation("unresectable", concept, None, valueBoolean=True)

    status_code = _concept(_observation_code(kind="disease_status", system="loinc"))
    for i, event in enumerate(facts.disease_course, 1):
        answer = _answer_for_status(event.status)
        b.observation(f"disease-status-{i}", status_code, event.date, valueCodeableConcept=_concept(answer))

    for i, therapy in enumerate(facts.therapies, 1):
        b.add(_medication_statement(f"therapy-{i}", therapy, b.subject, LINE_OF_THERAPY_URL))

    for i, transplant in enumerate(facts.transplants, 1):
        b.add(transplant_procedure(f"transplant-{i}", transplant.type, transplant.date, b.subject))

    if facts.transplant_ineligible is not None:
        code = _observation_code(kind="finding", key="transplant_ineligible")
        b.observation("transplant-ineligible", _concept(code), None, valueBoolean=facts.transplant_ineligible)

    if facts.ecog is not None:
        b.observation("ecog", _lab_concept("ecog"), facts.ecog.date, valueInteger=facts.ecog.value)

    for key in LAB_KEYS:
        result: LabEntry | None = getattr(facts.labs, key)
        if result is not None:
            b.observation(
                f"lab-{key.replace('_', '-')}", _lab_concept(key), result.date, **_lab_value(key, result)
            )

    if facts.hla_a is not None:
        b.add(_hla_observation(facts.hla_a, b.subject))
    if facts.braf_v600 is not None:
        b.add(_braf_observation(facts.braf_v600, b.subject))
    if facts.mage_a4 is not None:
        code = _observation_code(kind="finding", key="mage_a4")
        b.observation(
            "mage-a4", _concept(code), facts.mage_a4.date, valueCodeableConcept=_pos_neg(facts.mage_a4.result)
        )
    for name in ("hiv", "hbv", "hcv"):
        test: QualitativeResult | None = getattr(facts, name)
        if test is not None:
            code = _observation_code(kind="finding", key=name, system="loinc")
            b.observation(name, _concept(code), test.date, valueCodeableConcept=_pos_neg(test.result))
    for name, key in (("cns_involvement", "cns_involvement"), ("active_infection", "active_infection")):
        assessed: AssessmentEntry | None = getattr(facts, name)
        if assessed is not None:
            code = _observation_code(kind="finding", key=key, system="actnav")
            b.observation(
                name.replace("_", "-"), _concept(code), assessed.date, valueBoolean=assessed.present
            )
    if facts.pregnancy is not None:
        code = _observation_code(kind="finding", key="pregnant", display="Pregnancy status")
        answer = _answer("snomed", result="positive" if facts.pregnancy.present else "negative",
                         display="Pregnant" if facts.pregnancy.present else "Not pregnant")  # fmt: skip
        b.observation(
            "pregnancy", _concept(code), facts.pregnancy.date, valueCodeableConcept=_concept(answer)
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": b.entries}


def _answer_for_status(status: str) -> term.Answer:
    for a in term.observations().answers:
        if a.status == status:
            return a
    raise DataFileError(f"no answer for disease status {status!r}", where="terminology/observations.yaml")


def _pos_neg(result: str) -> dict[str, Any]:
    return _concept(_answer("loinc", result=result, display=_POS_NEG[result]))


def _medication_statement(
    rid: str, therapy: TherapyEntry, subject: dict[str, str], line_url: str
) -> dict[str, Any]:
    return medication_statement(
        rid, therapy.name, subject, start=therapy.start, end=therapy.end, line=therapy.line, line_url=line_url
    )


def medication_statement(
    rid: str,
    name: str,
    subject: dict[str, str],
    *,
    start: dt.date | None,
    end: dt.date | None = None,
    line: int | None = None,
    line_url: str | None = None,
    undated_status: str = "unknown",
) -> dict[str, Any]:
    """A MedicationStatement for a drug or regimen named as drugs.yaml spells it (docs/fhir-input.md).

    The name is the concept's text; a single agent with an RxNorm ingredient code is coded too.
    With a start and no end the period is open (ongoing: a washout is never met on a guess);
    without any date there is no period (the rules then call the therapy's dates unknown) and the
    status is ``undated_status``. ``line`` writes the line-of-therapy extension (``line_url``,
    default :data:`actnav.patient.fhir.LINE_OF_THERAPY_URL`).
    """
    found = term.match_drug([], [name])
    concept: dict[str, Any] = {"text": name}
    if not found.regimens and len(found.agents) == 1:
        agent = next(a for a in term.drugs().agents if a.name == found.agents[0])
        if agent.rxnorm:
            concept["coding"] = [_coding("rxnorm", agent.rxnorm[0], agent.name)]
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": undated_status if start is None else ("completed" if end is not None else "active"),
        "medicationCodeableConcept": concept,
        "subject": subject,
    }
    if start is not None:
        period = {"start": start.isoformat()}
        if end is not None:
            period["end"] = end.isoformat()
        resource["effectivePeriod"] = period
    if line is not None:
        from actnav.patient.fhir import LINE_OF_THERAPY_URL

        resource["extension"] = [{"url": line_url or LINE_OF_THERAPY_URL, "valuePositiveInt": line}]
    return resource


def transplant_procedure(
    rid: str, transplant_type: TransplantType, when: dt.date | None, subject: dict[str, str]
) -> dict[str, Any]:
    """An HSCT Procedure (drugs.yaml procedure code; the type in words, as the importer reads it)."""
    hsct = next(p for p in term.drugs().procedures if p.kind == "hsct")
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": rid,
        "status": "completed",
        "code": {
            "coding": [_coding(hsct.system, hsct.code, hsct.display)],
            "text": _TRANSPLANT_TEXT[transplant_type],
        },
        "subject": subject,
    }
    if when is not None:
        procedure["performedDateTime"] = when.isoformat()
    return procedure


def _lab_value(key: str, result: LabEntry) -> dict[str, Any]:
    from actnav.patient.units import canonical_ucum

    ucum = canonical_ucum(result.unit or term.analyte(key).unit, f"labs.{key}.unit")

    def quantity(number: float) -> dict[str, Any]:
        return {"value": number, "unit": ucum, "system": _uri("ucum"), "code": ucum}

    out: dict[str, Any] = {"valueQuantity": quantity(result.value)}
    if result.upper_limit_normal is not None:
        out["referenceRange"] = [{"high": quantity(result.upper_limit_normal)}]
    return out


def _hla_observation(typing: HlaTyping, subject: dict[str, str]) -> dict[str, Any]:
    locus = term.hla_table().locus
    written = [a if "*" in a else f"{locus}*{a}" for a in typing.alleles]
    high = all(term.hla_p_group(option.strip()).fields >= 2 for a in written for option in a.split("/"))
    code = _observation_code(kind="hla", display="High resolution" if high else "Low resolution")
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "hla-a",
        "status": "final",
        "code": _concept(code),
        "subject": subject,
        "valueString": "+".join(written),
    }
    if typing.date is not None:
        resource["effectiveDateTime"] = typing.date.isoformat()
    return resource


def _braf_observation(braf: BrafV600, subject: dict[str, str]) -> dict[str, Any]:
    """The mCODE genomic variant form (LOINC 69548-6), or for a V600 mutation whose change was not
    given the documented simpler form: code text "BRAF V600 mutation", value Positive."""
    gene = _braf()
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "braf",
        "status": "final",
        "subject": subject,
    }
    if braf.date is not None:
        resource["effectiveDateTime"] = braf.date.isoformat()
    if braf.result == "positive" and braf.variant is None:
        resource["code"] = {"text": f"{gene.symbol} {gene.hotspot} mutation"}
        resource["valueCodeableConcept"] = _pos_neg("positive")
        return resource
    components = term.observations().variant_components
    resource["code"] = _concept(_observation_code(kind="genetic_variant", system="loinc"))
    resource["valueCodeableConcept"] = _concept(
        _answer("loinc", result=braf.result, display=_PRESENT_ABSENT[braf.result])
    )
    resource["component"] = [
        {
            "code": {"coding": [_coding(components.gene_studied.system, components.gene_studied.code)]},
            "valueCodeableConcept": {"coding": [_coding("hgnc", gene.hgnc, gene.symbol)]},
        }
    ]
    if braf.variant is not None:
        resource["component"].append(
            {
                "code": {
                    "coding": [
                        _coding(components.amino_acid_change.system, components.amino_acid_change.code)
                    ]
                },
                "valueCodeableConcept": {"text": braf.variant},
            }
        )
    return resource


# -- choices for entry forms -----------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One option of a form list."""

    value: str
    label: str


def diagnosis_choices() -> list[tuple[str, list[Choice]]]:
    """The disease concepts grouped by their top concept (haematological, solid, other)."""
    groups: dict[str, list[Choice]] = {}
    concepts = disease_concepts()
    for concept, label in concepts.items():
        roots = [c for c in term.concept_lineage(concept) if c in concepts and not _parents(c)]
        root = roots[0] if roots else concept
        groups.setdefault(concepts[root], []).append(Choice(concept, label))
    return list(groups.items())


def _parents(concept: str) -> tuple[str, ...]:
    return next(c.parents for c in term.diagnoses().concepts if c.id == concept)


@cache
def therapy_names() -> tuple[str, ...]:
    """Agent names and regimen acronyms drugs.yaml recognises, sorted (for a suggestion list)."""
    drugs = term.drugs()
    names = {a.name for a in drugs.agents} | {r.name for r in drugs.regimens}
    return tuple(sorted(names, key=str.casefold))


@cache
def lab_units(key: str) -> tuple[str, ...]:
    """UCUM units of units.yaml that convert to the analyte's unit: the canonical one first.

    Dimensionless units (``1``, ``{score}``) are left out unless canonical: a fraction for LVEF or
    a count without a volume is a unit error, not a choice. So is another analyte's canonical unit
    written with an annotation: ``mL/min/{1.73_m2}`` is eGFR, not creatinine clearance.
    """
    canonical = term.analyte(key).unit
    annotated = {a.unit for a in term.labs().analytes if a.key != key and "{" in a.unit}
    out = [canonical]
    for unit in term.units_table().units:
        if unit.ucum == canonical or unit.pint == "dimensionless" or unit.ucum in annotated:
            continue
        try:
            to_canonical(1.0, unit.ucum, canonical, key)
        except UnitError:
            continue
        out.append(unit.ucum)
    return tuple(out)


def lab_label(key: str) -> str:
    """The analyte's description in labs.yaml (``Platelet count``)."""
    return term.analyte(key).description


def ecog_scale() -> tuple[int, ...]:
    """The ECOG grades (labs.yaml plausible range of ``ecog``: 0 to 5)."""
    bound = term.analyte("ecog").plausible
    return tuple(range(int(bound.min), int(bound.max) + 1))


__all__ = [
    "LAB_KEYS",
    "STATUS_LABELS",
    "KeyFacts",
    "KeyFactsError",
    "Problem",
    "diagnosis_codings",
    "keyfacts_to_bundle",
    "parse_keyfacts",
]
