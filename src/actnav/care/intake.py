"""Bring a patient into the stored workflow: read the FHIR Bundle, evaluate, store, audit.

The same steps serve the web intake, the REST API and ``actnav patients load``: the bundle is
read by :func:`actnav.patient.fhir.patient_from_bundle` and evaluated by
:func:`actnav.trials.search.evaluate_with_trials` exactly as ``actnav evaluate`` does, and the
patient, the bundle and the report are written in one transaction with the audit event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from actnav.eligibility.report_model import Evaluation
from actnav.errors import FhirImportError
from actnav.patient.fhir import patient_from_bundle
from actnav.store.accounts import Account, audit
from actnav.store.db import create_schema, session_scope
from actnav.store.patients import EvaluationRow, PatientRow, new_public_id

MAX_LABEL = 200


@dataclass(frozen=True)
class Registered:
    """A stored patient: its public id (for addresses) and internal id, and the evaluation."""

    public_id: str
    patient_id: int
    evaluation: Evaluation


def evaluate_bundle(bundle: object, *, as_of: dt.date, database_url: str | None) -> Evaluation:
    """Evaluate a parsed FHIR Bundle against the labels and the trials (as ``actnav evaluate``).

    Raises:
        FhirImportError, UnitError, InputError: the bundle cannot be read (naming the element).
    """
    from actnav.trials.search import evaluate_with_trials, load_trial_index

    patient = patient_from_bundle(bundle, as_of=as_of)
    evaluation = evaluate_with_trials(patient, as_of=as_of, loaded=load_trial_index(database_url))
    return _marked_from_note(bundle, evaluation)


def _marked_from_note(bundle: object, evaluation: Evaluation) -> Evaluation:
    """For a bundle written from a clinical note (resources with note evidence): the evaluation with
    every criterion resting on the note marked, ``reviewed`` when a person accepted or corrected
    every fact written (:func:`actnav.patient.notes.report.mark_from_note`)."""
    from actnav.patient.notes.bundle import extracted_resources
    from actnav.patient.notes.report import mark_from_note

    extracted = extracted_resources(bundle) if isinstance(bundle, dict) else {}
    if not extracted:
        return evaluation
    reviewed = all(e.review in ("accepted", "corrected") for found in extracted.values() for e in found)
    return mark_from_note(evaluation, extracted, reviewed=reviewed)


def label_from_bundle(bundle: dict[str, Any]) -> str:
    """The care team's label for a record: the Patient's name if it has one, else its id."""
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
            continue
        for name in resource.get("name") or []:
            if not isinstance(name, dict):
                continue
            text = name.get("text")
            if not isinstance(text, str) or not text.strip():
                given = " ".join(g for g in name.get("given") or [] if isinstance(g, str))
                family = name.get("family") if isinstance(name.get("family"), str) else ""
                text = f"{given} {family}".strip()
            if text:
                return text[:MAX_LABEL]
        return f"Patient {resource.get('id', '')}".strip()[:MAX_LABEL]
    return "Patient"


def register_patient(
    engine: Engine,
    bundle: object,
    *,
    as_of: dt.date,
    actor: Account | None,
    source: str,
    label: str | None = None,
) -> Registered:
    """Evaluate a bundle and store the patient with its evaluation (one transaction, audited).

    Args:
        engine: the database (migrated here if needed).
        bundle: the parsed FHIR R4 Bundle (``json.loads`` output).
        as_of: the evaluation date.
        actor: who registers it (None for the command line).
        source: ``upload``, ``form``, ``api`` or ``example``.
        label: the care team's name for the record; default from the Patient's name.

    Raises:
        FhirImportError, UnitError, InputError: the bundle cannot be read; nothing is stored.
    """
    if not isinstance(bundle, dict):
        raise FhirImportError("the top level is not a JSON object (a FHIR Bundle)", where="bundle")
    evaluation = evaluate_bundle(
        bundle, as_of=as_of, database_url=engine.url.render_as_string(hide_password=False)
    )
    create_schema(engine)
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        row = PatientRow(
            public_id=new_public_id(),
            label=(label or "").strip()[:MAX_LABEL] or label_from_bundle(bundle),
            source=source,
            bundle=bundle,
            created_at=now,
            created_by=actor.id if actor else None,
        )
        session.add(row)
        session.flush()
        session.add(
            EvaluationRow(
                patient_id=row.id,
                as_of=as_of,
                evaluated_at=now,
                evaluated_by=actor.id if actor else None,
                report=evaluation.model_dump(mode="json"),
            )
        )
        audit(
            session, actor, "create", "patient", row.public_id, patient_id=row.id, detail=f"source={source}"
        )
        return Registered(public_id=row.public_id, patient_id=row.id, evaluation=evaluation)


def reevaluate(engine: Engine, row_id: int, *, as_of: dt.date, actor: Account | None) -> Evaluation:
    """Evaluate a stored patient again on ``as_of`` and store the new report (audited).

    Raises:
        InputError: no patient with this id.
    """
    from actnav.errors import InputError

    with session_scope(engine) as session:
        row = session.get(PatientRow, row_id)
        if row is None:
            raise InputError("no such patient", where="patient")
        bundle = row.bundle
    evaluation = evaluate_bundle(
        bundle, as_of=as_of, database_url=engine.url.render_as_string(hide_password=False)
    )
    with session_scope(engine) as session:
        session.add(
            EvaluationRow(
                patient_id=row_id,
                as_of=as_of,
                evaluated_at=dt.datetime.now(dt.UTC),
                evaluated_by=actor.id if actor else None,
                report=evaluation.model_dump(mode="json"),
            )
        )
        audit(session, actor, "evaluate", "patient", None, patient_id=row_id, detail=f"as_of={as_of}")
    return evaluation
