"""The patient as the eligibility engine sees it: facts with value, unit, date and source.

A :class:`PatientRecord` is built from a FHIR R4 Bundle by :mod:`actnav.patient.fhir` (or, later,
from clinical notes). It holds only what the rules use, already normalised:

* quantities in one canonical UCUM unit per analyte (see ``data/terminology/labs.yaml``);
* diagnoses mapped to actnav disease concepts with their ancestors (``data/terminology/diagnoses.yaml``);
* drugs mapped to agents and drug classes (``data/terminology/drugs.yaml``);
* HLA alleles mapped to P groups (``data/terminology/hla.yaml``).

Every item keeps ``resource`` (``"Observation/abc"``) so a verdict can cite its evidence.
Nothing here knows about FHIR or files: this module is pure data.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Sex = Literal["female", "male", "other", "unknown"]
DiseaseStatus = Literal["relapse", "refractory", "progression", "stable", "response", "complete_remission"]
FindingValue = Literal["positive", "negative", "indeterminate"]
TransplantType = Literal["autologous", "allogeneic", "unknown"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coding(_Model):
    """A code as FHIR gives it: ``system`` URI, ``code`` and optional ``display``."""

    system: str | None = None
    code: str
    display: str | None = None


class Diagnosis(_Model):
    """A Condition the rules can use.

    Attributes:
        resource: ``"Condition/<id>"``.
        codings: the codes as given (ICD-10-CM, SNOMED CT, ICD-O-3).
        concepts: actnav disease concept ids this maps to, with all ancestors
            (``["b_all", "all", "hematologic_malignancy"]``); empty when the code is known but is
            not a disease the rules know.
        text: the display text, for the report.
        clinical_status: FHIR clinical status code (``active``, ``recurrence``, ``relapse``,
            ``remission``, ``resolved``, ``inactive``) or None when absent.
        onset: onset or recorded date, if given.
        in_relapse: True when the code itself says "in relapse" (ICD-10-CM C91.02, C90.02).
    """

    resource: str
    codings: tuple[Coding, ...] = ()
    concepts: tuple[str, ...] = ()
    text: str = ""
    clinical_status: str | None = None
    onset: dt.date | None = None
    in_relapse: bool = False


class DiseaseStatusEvent(_Model):
    """A dated statement about the course of the cancer (mCODE CancerDiseaseStatus style).

    Attributes:
        resource: ``"Observation/<id>"``.
        status: relapse, refractory, progression, stable, response or complete_remission.
        date: when it was observed; None when the resource gave no date.
        focus: the therapy it is about (``"MedicationStatement/<id>"``), e.g. refractory to
            lenalidomide; None when not stated.
    """

    resource: str
    status: DiseaseStatus
    date: dt.date | None = None
    focus: str | None = None


class Measurement(_Model):
    """A numeric observation in its canonical unit.

    Attributes:
        resource: ``"Observation/<id>"``.
        key: actnav analyte key (``anc``, ``platelets``, ``creatinine``, ``ecog``, ``lvef``...).
        code: the LOINC (or other) code it came from.
        value: value in ``unit``.
        unit: the canonical UCUM unit for ``key`` (``10*9/L``, ``mg/dL``, ``%``, ``{score}``).
        original: value and unit as written in the resource, for the report.
        date: effective date; None when the resource gave none.
        upper_limit_normal: upper reference limit in ``unit``, when the resource gave one.
    """

    resource: str
    key: str
    code: str
    value: float
    unit: str
    original: str
    date: dt.date | None = None
    upper_limit_normal: float | None = None


class Finding(_Model):
    """A qualitative result: a biomarker (``braf_v600``, ``mage_a4``) or status.

    Attributes:
        resource: ``"Observation/<id>"``.
        key: actnav finding key.
        value: positive, negative or indeterminate.
        detail: the variant or result as written (``"p.V600E"``), for the report.
        date: effective date.
    """

    resource: str
    key: str
    value: FindingValue
    detail: str = ""
    date: dt.date | None = None


class HlaAllele(_Model):
    """One HLA allele from a typing result.

    Attributes:
        resource: ``"Observation/<id>"``.
        written: the allele as written (``"HLA-A*02:01:01:01"``, ``"A*02"``).
        locus: ``"A"``, ``"B"``...
        fields: number of fields given (1 = low resolution, 2 or more = high resolution).
        p_group: the P group (``"A*02:01P"``) when the allele maps to one; None when it cannot be
            mapped at this resolution or is not in the packaged table.
        p_group_known_absent: True when the allele is known not to belong to any P group the
            rules list (e.g. an ``A*03`` allele is in no ``A*02`` group).
    """

    resource: str
    written: str
    locus: str
    fields: int
    p_group: str | None = None
    p_group_known_absent: bool = False
    date: dt.date | None = None


class TherapyExposure(_Model):
    """A systemic anticancer drug the patient received (or a cell therapy).

    Attributes:
        resource: ``"MedicationStatement/<id>"`` (or Administration / Request / Procedure).
        text: the drug as written.
        agents: normalised agent names (``"lenalidomide"``); empty when not recognised.
        classes: drug classes (``"imid"``, ``"anti_pd1"``...) from ``drugs.yaml``.
        start: first date given; end: last date given.
        line: line of therapy stated in the record (extension), or None to infer it.
        anticancer: False for supportive drugs (which never count as a line).
        unrecognised: True when the medication names no agent or regimen actnav knows; it is
            kept (``agents=()``) so the report can say "not recognised: <text>", and is
            anticancer only when it carries the line-of-therapy extension.
    """

    resource: str
    text: str
    agents: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    start: dt.date | None = None
    end: dt.date | None = None
    line: int | None = None
    anticancer: bool = True
    unrecognised: bool = False


class Transplant(_Model):
    """A haematopoietic stem cell transplant (Procedure)."""

    resource: str
    type: TransplantType
    date: dt.date | None = None


class PatientRecord(_Model):
    """Everything the rules know about one patient.

    Attributes:
        id: the Patient resource id (pseudonymous; never a name or MRN).
        birth_date: required; age is computed from it at the evaluation date.
        sex: administrative gender.
        deceased: True when the record says so; ``deceased_date`` when it gives a date.
        treatment_history_recorded: True when the record carries any systemic anticancer therapy;
            only then can the absence of a drug class be read as "not received".
        skipped: resource types present in the bundle that the rules do not use, with counts.
    """

    id: str
    birth_date: dt.date
    sex: Sex = "unknown"
    deceased: bool = False
    deceased_date: dt.date | None = None
    diagnoses: tuple[Diagnosis, ...] = ()
    disease_status: tuple[DiseaseStatusEvent, ...] = ()
    measurements: tuple[Measurement, ...] = ()
    findings: tuple[Finding, ...] = ()
    hla: tuple[HlaAllele, ...] = ()
    therapies: tuple[TherapyExposure, ...] = ()
    transplants: tuple[Transplant, ...] = ()
    skipped: dict[str, int] = Field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def treatment_history_recorded(self) -> bool:
        return any(t.anticancer for t in self.therapies)
