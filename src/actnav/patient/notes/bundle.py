"""The facts of a note as a FHIR R4 Bundle, each resource carrying the words that support it.

:func:`extraction_bundle` writes the patient facts of a :class:`NoteExtraction`
(:meth:`NoteExtraction.patient_facts`) in exactly the representation ``docs/fhir-input.md``
documents, with the builders of :mod:`actnav.care.keyfacts` (the key-facts form writes the same
resources), so the one importer :func:`actnav.patient.fhir.patient_from_bundle` reads them and
the evaluation runs as for any record.

Every resource made from a fact carries the extension :data:`NOTE_EVIDENCE_URL` with the span's
text, its offsets in the note, who proposed the fact (rules, language model, reviewer), the
reviewer's decision and the fact id; :func:`extracted_resources` reads them back so a report can
mark what rests on a note. The note itself is written only when asked (``include_note``), as a
DocumentReference the evidence points to.

What is written (docs/clinical-notes.md):

* age: ``Patient.birthDate`` estimated from the stated age (as of the note's date, minus the
  years, minus 182 days: the importer computes exactly the stated age), marked with
  :data:`BIRTH_DATE_ESTIMATED_URL`; sex: ``Patient.gender``;
* a diagnosis: a Condition (the fact's ICD-10-CM / SNOMED CT codes, the concept's codes of
  diagnoses.yaml, actnav's local code; a stage IV detail as ``stage.summary``);
* a disease status: a CancerDiseaseStatus Observation; a therapy: a MedicationStatement (and a
  disease status about it when the note says refractory or progressed on it); a transplant: an
  HSCT Procedure;
* performance status, labs, biomarkers, HLA-A typing, CNS involvement, infections and pregnancy
  as the Observations (or Conditions) the importer reads.

A negated, family, hypothetical or uncertain fact never becomes a resource, with one exception
the importer has an explicit negative for: a negated assessment of CNS involvement, active
infection or pregnancy ("no CNS involvement", "not pregnant") is written as the assessment with
the value false / not pregnant. A negated history of HIV or hepatitis is not a negative test and
is left out. Observations the note gives no date for are dated on the note's date (``as_of``):
the note states them as current. Undated therapies have no period, so washouts stay unknown.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from actnav.care import keyfacts as kf
from actnav.errors import DataFileError, InputError, UnitError
from actnav.patient import terminology as term
from actnav.patient.models import DiseaseStatus, TransplantType
from actnav.patient.notes.model import NoteExtraction, NoteFact, Origin, Review, Span

#: Extension on every resource made from a note fact: sub-extensions ``text``, ``start``,
#: ``end`` (offsets in the note), ``origin``, ``review``, ``fact``, ``kind`` and, with the note included,
#: ``document`` (a reference to the DocumentReference holding it).
NOTE_EVIDENCE_URL = "https://actnav.dev/fhir/StructureDefinition/note-evidence"
#: Extension on ``Patient.birthDate`` when it was estimated from a stated age (``valueString``).
BIRTH_DATE_ESTIMATED_URL = "https://actnav.dev/fhir/StructureDefinition/birth-date-estimated"
#: The DocumentReference id of the note when it is included.
NOTE_DOCUMENT_ID = "note"

# Half a year back from the stated age's anniversary: the age is exact whatever the birthday.
_HALF_YEAR_DAYS = 182
_STATUSES: tuple[DiseaseStatus, ...] = (
    "relapse",
    "refractory",
    "progression",
    "stable",
    "response",
    "complete_remission",
)
_TRANSPLANTS: tuple[TransplantType, ...] = ("autologous", "allogeneic", "unknown")
_RESULTS = ("positive", "negative", "indeterminate")


_VIRUSES = {"hiv": "hiv_infection", "hbv": "hbv_infection", "hcv": "hcv_infection"}


# -- evidence ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteEvidence:
    """The words of a note a resource was made from, as its evidence extension records them."""

    text: str
    start: int
    end: int
    origin: str
    fact: str
    review: str = "pending"
    kind: str = ""
    #: The fact's label, recorded for negated facts only ("no CNS involvement"): quoting their
    #: words alone ("CNS involvement") would read as the opposite.
    label: str = ""


def _evidence_extension(fact: NoteFact, document: str | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if fact.span.text.strip():  # a reviewer's addition may cite no words of the note
        parts += [
            {"url": "text", "valueString": fact.span.text},
            {"url": "start", "valueInteger": fact.span.start},
            {"url": "end", "valueInteger": fact.span.end},
        ]
    parts += [
        {"url": "origin", "valueCode": fact.origin},
        {"url": "review", "valueCode": fact.review},
        {"url": "fact", "valueString": fact.id},
        {"url": "kind", "valueCode": fact.kind},
    ]
    if fact.negated:
        parts.append({"url": "label", "valueString": fact.label})
    if document is not None:
        parts.append({"url": "document", "valueReference": {"reference": document}})
    return {"url": NOTE_EVIDENCE_URL, "extension": parts}


def extracted_resources(bundle: Mapping[str, Any]) -> dict[str, tuple[NoteEvidence, ...]]:
    """Which resources of a bundle were made from a note, with the words each rests on.

    Args:
        bundle: a FHIR Bundle as a JSON object (from :func:`extraction_bundle`, or any bundle:
            resources without the :data:`NOTE_EVIDENCE_URL` extension are left out).

    Returns:
        ``{"Condition/diagnosis-f3": (NoteEvidence(text="multiple myeloma", ...),), ...}``: the
        references the importer gives these resources (``Type/id``), as report evidence cites them.
    """
    out: dict[str, tuple[NoteEvidence, ...]] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping):
            continue
        found = []
        for ext in resource.get("extension") or []:
            if not isinstance(ext, Mapping) or ext.get("url") != NOTE_EVIDENCE_URL:
                continue
            parts = {p.get("url"): p for p in ext.get("extension") or [] if isinstance(p, Mapping)}

            def value(name: str, kind: str, parts: dict[Any, Any] = parts) -> Any:
                return parts.get(name, {}).get(kind)

            found.append(
                NoteEvidence(
                    text=str(value("text", "valueString") or ""),
                    start=int(value("start", "valueInteger") or 0),
                    end=int(value("end", "valueInteger") or 0),
                    origin=str(value("origin", "valueCode") or "rules"),
                    fact=str(value("fact", "valueString") or ""),
                    review=str(value("review", "valueCode") or "pending"),
                    kind=str(value("kind", "valueCode") or ""),
                    label=str(value("label", "valueString") or ""),
                )
            )
        if found and resource.get("resourceType") and resource.get("id"):
            out[f"{resource['resourceType']}/{resource['id']}"] = tuple(found)
    return out


# -- which facts are used ------------------------------------------------------------------------


def _not_about_patient(fact: NoteFact) -> str | None:
    """Why a fact cannot be the patient's, in words (None when it can)."""
    if fact.review == "rejected":
        return "rejected by the reviewer"
    if fact.family:
        return "about someone else"
    if fact.hypothetical:
        return "hypothetical"
    if fact.uncertain:
        return "uncertain"
    if fact.negated:
        return "negated"
    return None


def _explicit_negative(fact: NoteFact) -> bool:
    """A negated assessment the importer reads as a negative ("no CNS involvement")."""
    return (
        fact.negated
        and not (fact.family or fact.hypothetical or fact.uncertain)
        and fact.review != "rejected"
        and fact.kind in ("cns_involvement", "infection", "pregnancy")
        and (fact.kind != "infection" or fact.concept == "active_infection")
        and not fact.historical
    )


def fact_uses(extraction: NoteExtraction) -> dict[str, str | None]:
    """For every fact id: None when the fact is written to the bundle, else why not, in words.

    ``"negated"``, ``"about someone else"``, ``"not a drug actnav recognises"``... (the same
    decisions as :func:`extraction_bundle`; an age is used even when the bundle could not be
    written for want of one).
    """
    writer = _Writer(extraction, patient_id="p", document=None)
    writer.write_facts()
    return {f.id: writer.reasons.get(f.id) for f in extraction.facts}


# -- the bundle ----------------------------------------------------------------------------------


def extraction_bundle(
    extraction: NoteExtraction,
    *,
    patient_id: str | None = None,
    include_note: bool = False,
    birth_date: dt.date | None = None,
) -> dict[str, Any]:
    """Write the patient facts of a note as a FHIR R4 Bundle (type ``collection``).

    Args:
        extraction: the facts read from a note (reviewed or not).
        patient_id: the Patient id; default a new random UUID (pseudonymous).
        include_note: add the note as a DocumentReference (base64 ``text/plain`` attachment) and
            point every evidence extension at it. Off by default: the note may name the patient.
        birth_date: the birth date when known; it replaces the estimate from a stated age.

    Returns:
        The Bundle as a JSON object, read by :func:`actnav.patient.fhir.patient_from_bundle` as
        the facts stated: the stated age at ``extraction.as_of``, the diagnoses, therapies,
        transplants, labs (canonical units), findings. Facts that cannot be written (not about
        the patient, unmapped) are left out; :func:`fact_uses` says why.

    Raises:
        InputError: ``where="age"`` when the note states no age and no ``birth_date`` is given;
            ``where="age"`` / ``"sex"`` when the note states two different ages or sexes.
        DataFileError: a code the bundle needs is missing from the terminology tables.
    """
    document = f"DocumentReference/{NOTE_DOCUMENT_ID}" if include_note else None
    writer = _Writer(extraction, patient_id=patient_id or str(uuid.uuid4()), document=document)
    writer.write_facts()
    entries = [{"resource": writer.patient_resource(birth_date)}]
    entries += [{"resource": r} for r in writer.resources]
    if include_note:
        entries.append({"resource": _note_document(extraction.text, writer.subject)})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _note_document(text: str, subject: dict[str, str]) -> dict[str, Any]:
    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return {
        "resourceType": "DocumentReference",
        "id": NOTE_DOCUMENT_ID,
        "status": "current",
        "description": "Clinical note the facts were read from",
        "subject": subject,
        "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "data": data}}],
    }


def estimated_birth_date(age_years: int, as_of: dt.date) -> dt.date:
    """A birth date at which a person is exactly ``age_years`` old on ``as_of``: ``as_of`` minus
    the years minus 182 days (half a year, so the age holds whatever the true birthday)."""
    try:
        anniversary = as_of.replace(year=as_of.year - age_years)
    except ValueError:  # 29 February in a year that has none
        anniversary = as_of.replace(year=as_of.year - age_years, day=28)
    return anniversary - dt.timedelta(days=_HALF_YEAR_DAYS)


@dataclass
class _Writer:
    extraction: NoteExtraction
    patient_id: str
    document: str | None
    resources: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[str, str | None] = field(default_factory=dict)
    ages: list[tuple[int, NoteFact]] = field(default_factory=list)
    sexes: list[tuple[str, NoteFact]] = field(default_factory=list)
    hla: list[tuple[str, NoteFact]] = field(default_factory=list)
    # One resource per fact stated twice ("multiple myeloma ... her myeloma"), by what it says.
    merged: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    # Agents of each MedicationStatement, and statuses naming a drug ("refractory to X").
    medication_agents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    about_drugs: list[tuple[dict[str, Any], tuple[str, ...]]] = field(default_factory=list)

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient_id}"}

    @property
    def as_of(self) -> dt.date:
        return self.extraction.as_of

    def write_facts(self) -> None:
        for fact in self.extraction.facts:
            why = _not_about_patient(fact)
            if why is not None and not _explicit_negative(fact):
                self.reasons[fact.id] = why
                continue
            try:
                self.reasons[fact.id] = self._write(fact)
            except (UnitError, DataFileError, KeyError, ValidationError):
                # A value the tables cannot carry: shown to the reviewer, never guessed.
                self.reasons[fact.id] = "cannot be written with actnav's code tables"
        self._write_hla()
        self._link_focus()

    def _add(
        self, resource: dict[str, Any], *facts: NoteFact, key: tuple[Any, ...] | None = None
    ) -> dict[str, Any]:
        """Add a resource with the facts' evidence; a resource saying the same (``key``) gets
        the evidence instead. Returns the resource holding the evidence."""
        evidence = [_evidence_extension(f, self.document) for f in facts]
        if key is not None and key in self.merged:
            self.merged[key]["extension"] += evidence
            return self.merged[key]
        resource.setdefault("extension", [])
        resource["extension"] += evidence
        self.resources.append(resource)
        if key is not None:
            self.merged[key] = resource
        return resource

    def _link_focus(self) -> None:
        """ "Refractory to lenalidomide" as a status fact: its focus is the latest MedicationStatement
        of that drug (docs/fhir-input.md, disease course)."""
        for status, agents in self.about_drugs:
            matching = [rid for rid, given in self.medication_agents.items() if set(agents) & set(given)]
            if matching and "focus" not in status:
                status["focus"] = [{"reference": f"MedicationStatement/{matching[-1]}"}]

    def _observation(
        self, rid: str, code: dict[str, Any], when: dt.date | None, fact: NoteFact, **value: Any
    ) -> None:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid,
            "status": "final",
            "code": code,
            "subject": self.subject,
            "effectiveDateTime": (when or self.as_of).isoformat(),
        }
        resource.update(value)
        self._add(resource, fact, key=("observation", rid.rsplit("-", 1)[0], repr(code), repr(value), when))

    def _write(self, fact: NoteFact) -> str | None:
        handler = getattr(self, f"_{fact.kind}")
        result: str | None = handler(fact)
        return result

    # -- demographics ----------------------------------------------------------------------------

    def _age(self, fact: NoteFact) -> str | None:
        if fact.number is None:
            return "no number of years"
        years = fact.number / 12 if fact.unit == "mo" else fact.number
        if fact.unit not in (None, "a", "mo"):
            return f"an age in {fact.unit} is not read"
        bound = term.analyte("age_years").plausible
        if not bound.min <= years <= bound.max:
            return f"outside the plausible range ({bound.min:g} to {bound.max:g} years)"
        self.ages.append((int(years), fact))
        return None

    def _sex(self, fact: NoteFact) -> str | None:
        if fact.value not in ("female", "male"):
            return "no sex in words (female, male)"
        self.sexes.append((fact.value, fact))
        return None

    def patient_resource(self, birth_date: dt.date | None) -> dict[str, Any]:
        """The Patient: birth date (given, or estimated from the stated age), sex, evidence."""
        patient: dict[str, Any] = {"resourceType": "Patient", "id": self.patient_id}
        evidence: list[NoteFact] = []
        ages = sorted({years for years, _ in self.ages})
        if len(ages) > 1 and birth_date is None:
            raise InputError(
                f"the note states different ages ({', '.join(map(str, ages))} years)",
                where="age",
                hint="correct or reject all but one before evaluation",
            )
        if birth_date is not None:
            patient["birthDate"] = birth_date.isoformat()
        elif ages:
            years = self.ages[0][0]
            patient["birthDate"] = estimated_birth_date(years, self.as_of).isoformat()
            patient["_birthDate"] = {
                "extension": [
                    {"url": BIRTH_DATE_ESTIMATED_URL, "valueString": f"from stated age {years} years"}
                ]
            }
            evidence += [f for _, f in self.ages]
        else:
            raise InputError(
                "the note states no age: add it before evaluation",
                where="age",
                hint="give the birth date (--birth-date YYYY-MM-DD) or add the age to the note",
            )
        sexes = sorted({sex for sex, _ in self.sexes})
        if len(sexes) > 1:
            raise InputError(
                "the note states both female and male",
                where="sex",
                hint="correct or reject one before evaluation",
            )
        if sexes:
            patient["gender"] = sexes[0]
            evidence += [f for _, f in self.sexes]
        if evidence:
            patient["extension"] = [_evidence_extension(f, self.document) for f in evidence]
        return patient

    # -- diagnosis and course --------------------------------------------------------------------

    def _diagnosis(self, fact: NoteFact) -> str | None:
        codings = _condition_codings(fact)
        if not codings:
            return "no code or concept actnav knows"
        condition = self._condition(f"diagnosis-{fact.id}", codings, fact)
        stage = _stage_text(fact.detail) if fact.detail else None
        if stage and term.is_stage_iv(stage):
            condition["stage"] = [{"summary": {"text": stage}}]
        concept = fact.concept or tuple(sorted((c["system"], c["code"]) for c in codings))
        self._add(condition, fact, key=("diagnosis", concept, fact.date, stage))
        return None

    def _condition(self, rid: str, codings: list[dict[str, str]], fact: NoteFact) -> dict[str, Any]:
        """A Condition with the fact's codes and words, dated when the note dates it."""
        condition: dict[str, Any] = {
            "resourceType": "Condition",
            "id": rid,
            "code": {"coding": codings, "text": fact.label},
            "subject": self.subject,
        }
        if fact.date is not None:
            condition["onsetDateTime"] = fact.date.isoformat()
        return condition

    def _disease_status(self, fact: NoteFact) -> str | None:
        status = fact.value
        if status not in _STATUSES:
            return "no disease status actnav reads"
        resource = self._status(f"disease-status-{fact.id}", status, fact.date, fact)
        if status in ("refractory", "progression"):
            agents = term.match_drug([], [t for t in (fact.detail, fact.span.text) if t]).agents
            if agents:
                self.about_drugs.append((resource, agents))
        return None

    def _status(
        self, rid: str, status: str, when: dt.date | None, fact: NoteFact, focus: str | None = None
    ) -> dict[str, Any]:
        code = kf._concept(kf._observation_code(kind="disease_status", system="loinc"))
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": rid,
            "status": "final",
            "code": code,
            "subject": self.subject,
            "valueCodeableConcept": kf._concept(kf._answer_for_status(status)),
        }
        if when is not None:  # an undated relapse is not dated on the note's day
            resource["effectiveDateTime"] = when.isoformat()
        if focus is not None:
            resource["focus"] = [{"reference": focus}]
        return self._add(resource, fact, key=("status", status, when, focus, fact.detail))

    # -- treatment history -----------------------------------------------------------------------

    def _therapy(self, fact: NoteFact) -> str | None:
        name = next(
            (n for n in (fact.concept, fact.span.text, fact.label) if n and term.match_drug([], [n]).agents),
            None,
        )
        if name is None:
            return "not a drug or regimen actnav recognises"
        status = "completed" if fact.historical else "unknown"
        statement = kf.medication_statement(
            f"therapy-{fact.id}", name, self.subject, start=fact.date, undated_status=status
        )
        statement = self._add(statement, fact, key=("therapy", name.casefold(), fact.date))
        self.medication_agents[statement["id"]] = term.match_drug([], [name]).agents
        if fact.value in ("refractory", "progression", "relapse"):
            # "refractory to lenalidomide": a disease status about the therapy (docs/fhir-input.md).
            focus = f"MedicationStatement/{statement['id']}"
            self._status(f"disease-status-{fact.id}", fact.value, None, fact, focus=focus)
        return None

    def _transplant(self, fact: NoteFact) -> str | None:
        kind: TransplantType = next((t for t in _TRANSPLANTS if t == fact.value), "unknown")
        procedure = kf.transplant_procedure(f"transplant-{fact.id}", kind, fact.date, self.subject)
        self._add(procedure, fact, key=("transplant", kind, fact.date))
        return None

    # -- fitness ---------------------------------------------------------------------------------

    def _performance_status(self, fact: NoteFact) -> str | None:
        key = fact.concept
        if key not in ("ecog", "karnofsky") or fact.number is None:
            return "no ECOG or Karnofsky score"
        if fact.number != int(fact.number) or term.implausible(key, fact.number) is not None:
            return f"not a {key.upper() if key == 'ecog' else 'Karnofsky'} score"
        self._observation(
            f"{key}-{fact.id}", kf._lab_concept(key), fact.date, fact, valueInteger=int(fact.number)
        )
        return None

    def _lab(self, fact: NoteFact) -> str | None:
        key = fact.concept
        if key is None or fact.number is None:
            return "no analyte or value"
        if fact.unit is None:
            # A number without a unit is never read in the canonical unit (keyfacts would).
            recognised = "unit not recognised" not in (fact.detail or "")
            return "unit not stated" if recognised else "unit not recognised"
        analyte = term.analyte(key)
        value = kf.lab_in_canonical_unit(key, fact.number, fact.unit)
        problem = term.implausible(key, value)
        if problem is not None:
            return problem
        from actnav.patient.units import canonical_ucum

        ucum = canonical_ucum(analyte.unit, f"{fact.id}.unit")
        quantity = {"value": round(value, 6), "unit": ucum, "system": kf._uri("ucum"), "code": ucum}
        rid = f"lab-{key.replace('_', '-')}-{fact.id}"
        self._observation(rid, kf._lab_concept(key), fact.date, fact, valueQuantity=quantity)
        return None

    # -- biomarkers ------------------------------------------------------------------------------

    def _biomarker(self, fact: NoteFact) -> str | None:
        result = fact.value
        if result not in _RESULTS:
            return "no result (positive, negative)"
        key = fact.concept or ""
        if key == "braf_v600":
            change = re.search(r"V600([A-Z])", f"{fact.detail or ''} {fact.span.text}", re.IGNORECASE)
            variant = f"p.V600{change[1].upper()}" if change and result == "positive" else None
            braf = kf.BrafV600.model_validate({"result": result, "variant": variant, "date": fact.date})
            resource = kf._braf_observation(braf, self.subject)
            resource["id"] = f"braf-{fact.id}"
            resource.setdefault("effectiveDateTime", self.as_of.isoformat())
            self._add(resource, fact)
            return None
        if key == "mage_a4":
            code = kf._concept(kf._observation_code(kind="finding", key="mage_a4"))
            self._observation(
                f"mage-a4-{fact.id}", code, fact.date, fact, valueCodeableConcept=kf._pos_neg(result)
            )
            return None
        antigen = key.removeprefix("antigen_")
        text = f"{antigen.upper()} expression"
        if term.text_finding(text) != f"antigen_{antigen}":
            return "no biomarker actnav reads"
        self._observation(
            f"antigen-{antigen}-{fact.id}",
            {"text": text},
            fact.date,
            fact,
            valueCodeableConcept=kf._pos_neg(result),
        )
        return None

    def _hla(self, fact: NoteFact) -> str | None:
        written = (fact.value or "").strip()
        if not written:
            return "no allele"
        try:
            kf.HlaTyping.model_validate({"alleles": [written]})
        except ValidationError:
            return "not an HLA-A allele name actnav reads"
        self.hla.append((written, fact))
        return None

    def _write_hla(self) -> None:
        # One HLA-A typing of up to two alleles (docs/fhir-input.md, HLA typing).
        alleles = list(dict.fromkeys(a for a, _ in self.hla))
        if not alleles:
            return
        if len(alleles) > 2:
            for _, fact in self.hla:
                self.reasons[fact.id] = "more than two HLA-A alleles stated"
            return
        dates = [f.date for _, f in self.hla if f.date is not None]
        typing = kf.HlaTyping.model_validate({"alleles": alleles, "date": max(dates) if dates else None})
        resource = kf._hla_observation(typing, self.subject)
        resource.setdefault("effectiveDateTime", self.as_of.isoformat())
        self._add(resource, *(f for _, f in self.hla))

    # -- findings --------------------------------------------------------------------------------

    def _cns_involvement(self, fact: NoteFact) -> str | None:
        return self._current_finding(
            fact, "cns_involvement", past="past CNS involvement: its current state needs review"
        )

    def _current_finding(self, fact: NoteFact, key: str, *, past: str) -> str | None:
        """A finding about now (CNS involvement, active infection) as a boolean Observation; a
        past mention says nothing about now and is not written (``past`` says why)."""
        if fact.historical and not fact.negated:
            return past
        present = _present(fact)
        if present is None:
            return "a negated negative result is unclear"
        code = kf._concept(kf._observation_code(kind="finding", key=key, system="actnav"))
        rid = f"{key.replace('_', '-')}-{fact.id}"
        self._observation(rid, code, fact.date, fact, valueBoolean=present)
        return None

    def _infection(self, fact: NoteFact) -> str | None:
        key = (fact.concept or "").removesuffix("_infection")
        if key == "active":
            return self._current_finding(
                fact, "active_infection", past="a past infection is not an active one"
            )
        if key not in _VIRUSES:
            return "no infection actnav reads"
        if fact.value in ("negative", "indeterminate"):  # a test result: "HBsAg negative"
            code = kf._concept(kf._observation_code(kind="finding", key=key, system="loinc"))
            self._observation(
                f"{key}-{fact.id}", code, fact.date, fact, valueCodeableConcept=kf._pos_neg(fact.value)
            )
            return None
        concept = _VIRUSES[key]
        codings = _condition_codings(fact.model_copy(update={"concept": concept}))
        condition = self._condition(f"infection-{fact.id}", codings, fact)
        self._add(condition, fact, key=("infection", concept, fact.date))
        return None

    def _pregnancy(self, fact: NoteFact) -> str | None:
        if fact.concept in ("breastfeeding", "lactation"):
            return "breastfeeding is not written yet"
        if fact.historical and not fact.negated:
            return "a past pregnancy"
        pregnant = not fact.negated and fact.value != "negative"
        code = kf._concept(kf._observation_code(kind="finding", key="pregnant", display="Pregnancy status"))
        answer = kf._answer("snomed", result="positive" if pregnant else "negative",
                            display="Pregnant" if pregnant else "Not pregnant")  # fmt: skip
        self._observation(
            f"pregnancy-{fact.id}", code, fact.date, fact, valueCodeableConcept=kf._concept(answer)
        )
        return None


def _present(fact: NoteFact) -> bool | None:
    """An assessment's value: stated present, negated (absent), or None for "no ... negative"."""
    if fact.negated:
        return None if fact.value == "negative" else False
    return fact.value != "negative"


def _stage_text(detail: str) -> str:
    found = re.search(r"stage\s+[0-4IV]+[A-C]?", detail, re.IGNORECASE)
    return found[0] if found else detail


def _condition_codings(fact: NoteFact) -> list[dict[str, str]]:
    """The fact's own codes (systems the importer knows), then the concept's codes of
    diagnoses.yaml in systems the fact does not already code, and actnav's local code."""
    out: list[dict[str, str]] = []
    for c in fact.codes:
        if c.system is not None and term.system_key(c.system) is not None:
            coding = {"system": c.system, "code": c.code}
            if c.display:
                coding["display"] = c.display
            out.append(coding)
    concept = fact.concept
    if concept is None:
        return out
    coded = {c["system"] for c in out}
    if concept in kf.disease_concepts():
        extra = kf.diagnosis_codings(concept)
    else:
        labels = {c.id: c.label for c in term.diagnoses().concepts}
        extra = [kf._coding("actnav", concept, labels[concept])] if concept in labels else []
    local = kf._uri("actnav")
    out += [c for c in extra if c["system"] == local or c["system"] not in coded]
    unique: dict[tuple[str, str], dict[str, str]] = {}
    for coding in out:
        unique.setdefault((coding["system"], coding["code"]), coding)
    return list(unique.values())


# -- review --------------------------------------------------------------------------------------


class Decision(BaseModel):
    """A reviewer's decision on one fact: accept it, correct some of its fields, or reject it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["accept", "correct", "reject"]
    label: str | None = None
    value: str | None = None
    number: float | None = None
    unit: str | None = None
    concept: str | None = None
    date: dt.date | None = None

    @model_validator(mode="after")
    def _fields_only_to_correct(self) -> Decision:
        changed = self.corrections()
        if self.action == "correct" and not changed:
            raise ValueError("a correction needs at least one corrected field")
        if self.action != "correct" and changed:
            raise ValueError(f"only a correction changes fields ({', '.join(changed)})")
        return self

    def corrections(self) -> dict[str, Any]:
        """The corrected fields and their new values."""
        return {k: v for k, v in self.model_dump(exclude={"action"}).items() if v is not None}


_REVIEWS: dict[str, Review] = {"accept": "accepted", "correct": "corrected", "reject": "rejected"}

#: The values a fact of these kinds may take (NoteFact.value; actnav.patient.models vocabularies).
ALLOWED_VALUES: dict[str, tuple[str, ...]] = {
    "sex": ("female", "male"),
    "disease_status": _STATUSES,
    "transplant": _TRANSPLANTS,
    "biomarker": _RESULTS,
    "cns_involvement": _RESULTS,
    "infection": _RESULTS,
    "pregnancy": _RESULTS,
}
#: Earliest date a correction may give (an earlier one is a typing error).
EARLIEST_DATE = dt.date(1900, 1, 1)
#: Most relapses a disease status may count (a larger number is a typing error).
_MAX_RELAPSES = 50
_SEROLOGIC_HLA = re.compile(r"^(?:HLA-?)?[ABC]\d{1,3}$", re.IGNORECASE)


def correctable_concepts(kind: str) -> frozenset[str]:
    """The keys a reviewer may give a fact of ``kind`` as its concept, the keys the extractors
    give: diagnosis, a disease concept of ``diagnoses.yaml``; therapy, an agent or regimen of
    ``drugs.yaml`` (or a therapy target rule's key, ``car_t``); lab, an analyte of ``labs.yaml``;
    performance status, ``ecog`` / ``karnofsky``; biomarker, CNS involvement, infection and
    pregnancy, the finding keys of ``data/notes/markers.yaml`` and ``findings.yaml``. Other
    kinds (age, sex, disease status, transplant, HLA) take no concept from a reviewer: empty."""
    return _correctable_concepts().get(kind, frozenset())


@cache
def _correctable_concepts() -> dict[str, frozenset[str]]:
    from actnav.patient.notes.findings import findings_vocabulary
    from actnav.patient.notes.markers import markers_vocabulary
    from actnav.patient.notes.pipeline import target_rules

    therapy = {a.name for a in term.drugs().agents} | {r.name for r in term.drugs().regimens}
    therapy |= {r.concept for r in target_rules() if r.kind == "therapy" and r.concept}
    finding_of = {e.id: e.finding for e in findings_vocabulary().entries}
    findings: dict[str, set[str]] = {"cns_involvement": set(), "infection": set(), "pregnancy": set()}
    for rule in target_rules():
        key = finding_of.get(rule.concept or "")
        if rule.kind in findings and key is not None:
            findings[rule.kind].add(key)
    return {
        "diagnosis": frozenset(c.id for c in term.diagnoses().concepts),
        "therapy": frozenset(therapy),
        "lab": frozenset(a.key for a in term.labs().analytes),
        "performance_status": frozenset({"ecog", "karnofsky"}),
        "biomarker": frozenset(m.finding for m in markers_vocabulary().markers if m.finding),
        **{kind: frozenset(keys) for kind, keys in findings.items()},
    }


def check_correction(fact: NoteFact, corrected: Mapping[str, Any], as_of: dt.date) -> None:
    """Refuse a correction the extractors would never produce.

    Args:
        fact: the fact as read; corrected: the corrected fields and their new values
            (:meth:`Decision.corrections`); as_of: the note's date.

    Raises:
        InputError: ``where="decisions.<id>.<field>"``: a blank label; a concept that is not a key
            of the fact's kind (:func:`correctable_concepts`); a value outside the kind's list
            (:data:`ALLOWED_VALUES`; an HLA allele name for HLA); an age outside the plausible
            range of ``labs.yaml`` ``age_years`` (0-125 years); a lab number that does not convert
            from its unit to the analyte's canonical unit or lies outside the analyte's
            ``plausible`` range (``labs.yaml``); an ECOG or Karnofsky score off its scale; a number
            or unit on a kind that takes none; a date after ``as_of`` or before 1900.
    """
    kind = fact.kind

    def refuse(name: str, message: str) -> InputError:
        return InputError(message, where=f"decisions.{fact.id}.{name}")

    if "label" in corrected and not str(corrected["label"]).strip():
        raise refuse("label", "the label is empty")
    concept = corrected.get("concept", fact.concept)
    if "concept" in corrected:
        allowed = correctable_concepts(kind)
        if not allowed:
            raise refuse("concept", f"a {kind.replace('_', ' ')} fact takes no concept")
        if concept not in allowed:
            raise refuse("concept", f"{concept!r} is not a {kind.replace('_', ' ')} key actnav knows")
    if "value" in corrected:
        _check_value(kind, str(corrected["value"]), refuse)
    if "number" in corrected or "unit" in corrected:
        number = corrected.get("number", fact.number)
        unit = corrected.get("unit", fact.unit)
        field = "number" if "number" in corrected else "unit"
        _check_measure(kind, concept, number, unit, field, refuse)
    if "date" in corrected:
        when = corrected["date"]
        if when > as_of:
            raise refuse("date", f"the date {when} is after the note's date ({as_of})")
        if when < EARLIEST_DATE:
            raise refuse("date", "the date is before 1900")


def _check_value(kind: str, value: str, refuse: Any) -> None:
    if kind == "hla":
        if term.hla_p_group(value).locus is None and not _SEROLOGIC_HLA.match(value):
            raise refuse("value", f"{value!r} is not an HLA allele name (A*02:01, A2)")
        return
    allowed = ALLOWED_VALUES.get(kind)
    if allowed is None:
        raise refuse("value", f"a {kind.replace('_', ' ')} fact takes no value: correct its label or concept")
    if value not in allowed:
        raise refuse("value", f"{value!r} is not one of {', '.join(allowed)}")


def _check_measure(
    kind: str, concept: str | None, number: float | None, unit: str | None, field: str, refuse: Any
) -> None:
    """A corrected number or unit, checked as the extractors and the bundle read them."""
    if kind == "age":
        if unit not in (None, "a", "mo"):
            raise refuse("unit", "an age is in years (a) or months (mo)")
        if number is None:
            return
        years = number / 12 if unit == "mo" else number
        bound = term.analyte("age_years").plausible
        if not bound.min <= years <= bound.max:
            raise refuse("number", f"an age of {number:g} is outside {bound.min:g} to {bound.max:g} years")
        return
    if kind == "lab":
        if concept is None or number is None or unit is None:
            return  # not written to the bundle anyway ("no analyte", "unit not stated")
        try:
            value = kf.lab_in_canonical_unit(concept, number, unit)
        except UnitError:
            canonical = term.analyte(concept).unit
            raise refuse("unit", f"{unit!r} does not convert to {canonical} for {concept}") from None
        problem = term.implausible(concept, value)
        if problem is not None:
            raise refuse(field, problem)
        return
    if kind == "performance_status":
        if field == "unit":
            raise refuse("unit", "a performance status takes no unit")
        if number is None or concept not in ("ecog", "karnofsky"):
            return
        problem = term.implausible(concept, number)
        if problem is not None or number != int(number):
            raise refuse("number", problem or f"a {concept} score is a whole number")
        return
    if kind == "disease_status" and field == "number":
        if number is not None and not (0 <= number <= _MAX_RELAPSES and number == int(number)):
            raise refuse("number", f"the number of relapses is a whole number from 0 to {_MAX_RELAPSES}")
        return
    raise refuse(field, f"a {kind.replace('_', ' ')} fact takes no {field}")


def apply_review(extraction: NoteExtraction, decisions: Mapping[str, Decision]) -> NoteExtraction:
    """The extraction with the reviewer's decisions applied.

    Args:
        extraction: the facts as read.
        decisions: fact id -> decision. A correction replaces the given fields and sets the fact's
            origin to ``reviewer`` (a corrected concept also drops the codes read with the old
            one, so the bundle codes the new concept). Facts without a decision stay as they are.

    Returns:
        A new extraction (facts in the same order), reviews set to accepted / corrected / rejected.

    Raises:
        InputError: ``where="decisions.<id>"`` for a fact id the extraction does not have;
            ``where="decisions.<id>.<field>"`` for a correction the extractors would not produce
            (:func:`check_correction`: unknown concept, value off the kind's list, implausible age
            or lab value, date after ``as_of``) or the fact model refuses.
    """
    known = {f.id for f in extraction.facts}
    for fact_id in decisions:
        if fact_id not in known:
            raise InputError(f"no fact {fact_id!r} in this extraction", where=f"decisions.{fact_id}")
    facts: list[NoteFact] = []
    for fact in extraction.facts:
        decision = decisions.get(fact.id)
        if decision is None:
            facts.append(fact)
            continue
        update: dict[str, Any] = {"review": _REVIEWS[decision.action]}
        if decision.action == "correct":
            check_correction(fact, decision.corrections(), extraction.as_of)
            update |= decision.corrections() | {"origin": "reviewer"}
            if "concept" in update and update["concept"] != fact.concept:
                update["codes"] = ()
        try:
            facts.append(NoteFact.model_validate(fact.model_dump() | update))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(
                f"invalid correction: {first['msg']}",
                where=f"decisions.{fact.id}.{'.'.join(map(str, first['loc']))}",
            ) from None
    return extraction.model_copy(update={"facts": tuple(facts)})


def add_fact(
    extraction: NoteExtraction,
    *,
    kind: str,
    label: str,
    start: int | None = None,
    end: int | None = None,
    concept: str | None = None,
    value: str | None = None,
    number: float | None = None,
    unit: str | None = None,
    date: dt.date | None = None,
    origin: Origin = "reviewer",
) -> NoteExtraction:
    """The extraction with a fact a reviewer added (id ``r1``, ``r2``... after the others).

    Args:
        kind: a :data:`~actnav.patient.notes.model.FactKind`; label: the fact in words.
        start, end: the words of the note that state it (offsets), or neither when the note does
            not (the evidence is then empty, the origin says who added it).
        concept, value, number, unit, date: as :class:`NoteFact` documents them.

    Returns:
        A new extraction with the fact appended, accepted.

    Raises:
        InputError: offsets outside the note (``where="start"``), or a field the model refuses
            (``where`` naming it).
    """
    text = extraction.text
    if (start is None) != (end is None):
        raise InputError("give both start and end, or neither", where="start" if start is None else "end")
    if start is not None and end is not None and not 0 <= start <= end <= len(text):
        raise InputError(f"the span {start}-{end} is not inside the note (0-{len(text)})", where="start")
    span = Span(start=start or 0, end=end or 0, text=text[start:end] if start is not None else "")
    taken = {f.id for f in extraction.facts}
    n = 1
    while f"r{n}" in taken:
        n += 1
    data = {
        "id": f"r{n}",
        "kind": kind,
        "label": label,
        "span": span,
        "sentence": span,
        "concept": concept,
        "value": value,
        "number": number,
        "unit": unit,
        "date": date,
        "origin": origin,
        "review": "accepted",
    }
    try:
        fact = NoteFact.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"invalid fact: {first['msg']}", where=".".join(map(str, first["loc"]))) from None
    return extraction.model_copy(update={"facts": (*extraction.facts, fact)})


def evidence_text(evidence: Sequence[NoteEvidence]) -> list[str]:
    """The distinct span texts of some evidence, in order (``["64yo woman", "multiple myeloma"]``);
    a negated fact is quoted by its label (``"no CNS involvement"``), not by the words of the
    finding alone."""
    return list(dict.fromkeys(e.label or e.text or "(added by a reviewer)" for e in evidence))


__all__ = [
    "BIRTH_DATE_ESTIMATED_URL",
    "NOTE_EVIDENCE_URL",
    "Decision",
    "NoteEvidence",
    "add_fact",
    "apply_review",
    "check_correction",
    "correctable_concepts",
    "estimated_birth_date",
    "evidence_text",
    "extracted_resources",
    "extraction_bundle",
    "fact_uses",
]
