"""Where trials come from for matching, and the composition with the label evaluation.

* :func:`load_trial_index`: the trials of the database when it holds any (``--database-url``,
  else ``ACTNAV_DATABASE_URL``, else the SQLite file in the user data folder), else the offline
  records packaged with actnav (:func:`actnav.trials.sources.iter_bundled_records`). The database is
  only read: a missing SQLite file is never created, a database without the trial table counts as
  empty.
* Parsing eligibility text (about 0.2 s a trial, plus about 4 s to load medspacy) and classifying
  a record are cached on disk in the user cache folder (``platformdirs.user_cache_dir("actnav")``),
  one pickle per distinct text or record, keyed by a SHA-256 of the input and of the parser's (or
  classifier's) own source files and rule files, so an edited parser or rule file never reuses a
  stale result. ``ACTNAV_NO_CACHE=1`` turns the cache off; an unwritable folder only costs speed.
* :func:`evaluate_with_trials`: the label evaluation (:func:`actnav.eligibility.evaluate.evaluate_patient`,
  unchanged and pure) plus the ranked trials, as one :class:`~actnav.eligibility.report_model.Evaluation`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from actnav.eligibility.report_model import Evaluation, TrialMatchReport, TrialSearch
from actnav.errors import DataFileError
from actnav.patient.models import PatientRecord
from actnav.trials.geo import GeoPoint
from actnav.trials.match import TrialIndex, rank_trials
from actnav.trials.models import TrialRecord
from actnav.trials.parse import ParsedCriterion
from actnav.trials.recognition import ActClassification

__all__ = [
    "LoadedIndex",
    "add_trials",
    "cached_classify",
    "cached_parse",
    "evaluate_with_trials",
    "load_trial_index",
    "match_patient",
]

#: Trials shown in the evaluation report by default.
EVALUATE_TRIAL_LIMIT = 10


@dataclass(frozen=True)
class LoadedIndex:
    """An index and where its trials came from (``database`` or ``bundled``)."""

    index: TrialIndex
    source: str


# --------------------------------------------------------------------------------------------
# Disk cache of parses and classifications
# --------------------------------------------------------------------------------------------


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


@cache
def _fingerprint(kind: str) -> str:
    """SHA-256 of the code and rule files a cached result depends on, and the Python version."""
    pkg = resources.files("actnav")
    files = {
        "parse": [
            "trials/parse.py",
            "trials/criteria_text.py",
            "data/trials/parse-rules.yaml",
            "data/facts.yaml",
            "data/trials/trial-facts.yaml",
        ],
        "classify": ["trials/recognition.py", "data/trials/act-vocabulary.yaml"],
    }[kind]
    blobs = []
    for name in files:
        path = pkg.joinpath(*name.split("/"))
        blobs.append(path.read_bytes() if path.is_file() else b"")
    return _digest(kind.encode(), f"py{sys.version_info[0]}.{sys.version_info[1]}".encode(), *blobs)


def _cache_file(kind: str, key: bytes) -> Path | None:
    if os.environ.get("ACTNAV_NO_CACHE") == "1":
        return None
    from platformdirs import user_cache_dir

    digest = _digest(_fingerprint(kind).encode(), key)
    return Path(user_cache_dir("actnav")) / "trials" / kind / digest[:2] / f"{digest}.pickle"


def _load(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.PickleError, EOFError, AttributeError, ValueError, ImportError, TypeError):
        return None  # missing or unreadable: compute again


def _store(path: Path | None, value: Any) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only or full disk: the cache is an optimisation only


def cached_parse(text: str) -> tuple[ParsedCriterion, ...]:
    """Split and parse an eligibility text, reusing a cached parse of the same text and parser."""
    path = _cache_file("parse", text.encode("utf-8"))
    found = _load(path)
    if isinstance(found, tuple):
        return found
    from actnav.trials.match import default_parse

    parsed = default_parse(text)
    _store(path, parsed)
    return parsed


def cached_classify(record: TrialRecord) -> ActClassification:
    """The ACT classification of a record, reusing a cached one for the same content and vocabulary."""
    fields = record.model_dump(
        mode="json",
        include={
            "title",
            "official_title",
            "brief_summary",
            "keywords",
            "interventions",
            "conditions",
            "eligibility_text",
        },
    )
    path = _cache_file("classify", json.dumps(fields, sort_keys=True).encode("utf-8"))
    found = _load(path)
    if isinstance(found, ActClassification):
        return found
    from actnav.trials.recognition import classify

    result = classify(record)
    _store(path, result)
    return result


# --------------------------------------------------------------------------------------------
# Loading trials
# --------------------------------------------------------------------------------------------


def _bundled() -> Iterator[tuple[TrialRecord, ActClassification]]:
    from actnav.trials.sources import iter_bundled_records

    for result in iter_bundled_records():
        if result.problem is not None:
            raise DataFileError(result.problem.problem, where=str(result.problem))
        if result.record is not None:
            yield result.record, cached_classify(result.record)


def _database_rows(database_url: str) -> list[tuple[TrialRecord, ActClassification]] | None:
    """The stored trials with their stored classification, or None when the database has none.

    Never creates anything: a SQLite file that does not exist, or a database without the trial
    table, counts as empty.
    """
    if database_url.startswith("sqlite:///") and not Path(database_url[len("sqlite:///") :]).exists():
        return None  # the common offline case: skip importing SQLAlchemy (~0.5 s of start-up)
    from sqlalchemy import create_engine, inspect, select
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError
    from sqlalchemy.orm import Session

    from actnav.errors import InputError
    from actnav.store.trials import TrialRow

    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise InputError(
            f"not a SQLAlchemy URL: {database_url!r}", where="--database-url / ACTNAV_DATABASE_URL"
        ) from exc
    if url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or not Path(url.database or "").expanduser().exists()
    ):
        return None
    engine = create_engine(url)
    try:
        if not inspect(engine).has_table(TrialRow.__tablename__):
            return None
        with Session(engine) as session:
            rows = [
                (row.to_record(), row.classification())
                for row in session.scalars(select(TrialRow).order_by(TrialRow.nct_id))
            ]
    except SQLAlchemyError as exc:
        safe = url.render_as_string(hide_password=True)
        raise InputError(f"cannot read the trial database: {exc}", where=safe) from exc
    finally:
        engine.dispose()
    return rows or None


_INDEXES: dict[str, LoadedIndex] = {}


def load_trial_index(database_url: str | None = None) -> LoadedIndex:
    """The trials to match: the database's when it holds any, else the bundled offline records.

    Args:
        database_url: ``--database-url`` (else ``ACTNAV_DATABASE_URL``, else the default SQLite file).

    Returns:
        The index (built once per process and source) and its source.

    Raises:
        InputError: the URL is invalid or the database cannot be read.
        DataFileError: a bundled record is malformed (a broken installation).
    """
    from actnav.config import get_settings

    url = get_settings(database_url).database_url
    rows = _database_rows(url)
    key = f"database:{url}" if rows else "bundled"
    if rows is None and key in _INDEXES:
        return _INDEXES[key]
    if rows is not None:
        loaded = LoadedIndex(TrialIndex.build(rows, parse=cached_parse), "database")
    else:
        loaded = LoadedIndex(TrialIndex.build(_bundled(), parse=cached_parse), "bundled")
        _INDEXES[key] = loaded
    return loaded


# --------------------------------------------------------------------------------------------
# Composition with the label evaluation
# --------------------------------------------------------------------------------------------


def match_patient(
    patient: PatientRecord,
    *,
    as_of: date,
    loaded: LoadedIndex,
    near: GeoPoint | None = None,
    radius_km: float | None = None,
    statuses: Sequence[str] = (),
    modality: str | None = None,
    act_only: bool = True,
    limit: int | None = 20,
) -> TrialMatchReport:
    """Rank the trials of ``loaded`` for one patient (``actnav match``).

    Args:
        patient: the record (:func:`actnav.patient.fhir.read_bundle`).
        as_of: the evaluation date (age, currency of results).
        loaded: the trials (:func:`load_trial_index`).
        near: the patient's point for distances; radius_km: keep trials with a recruiting site
            within this distance (km) of it.
        statuses: keep only these overall statuses; modality: only this modality; act_only: only
            adoptive cell therapy trials.
        limit: how many top trials to evaluate in full and return (None: all).
    """
    from actnav import __version__
    from actnav.eligibility.evaluate import DISCLAIMER, _summary
    from actnav.eligibility.facts import PatientFacts
    from actnav.knowledge.loader import load_facts

    facts = PatientFacts(patient, as_of, load_facts())
    matches, ranked = rank_trials(
        facts,
        loaded.index,
        limit=limit,
        near=near,
        radius_km=radius_km,
        statuses=statuses,
        modality=modality,
        act_only=act_only,
    )
    search = TrialSearch(
        source=loaded.source,
        trials_checked=ranked.checked,
        trials_shown=len(matches),
        near=near.label if near else None,
        radius_km=radius_km,
        statuses=[s.upper() for s in statuses],
        modality=modality,
        act_only=act_only,
    )
    return TrialMatchReport(
        as_of=as_of,
        generated_by=f"actnav {__version__}",
        patient=_summary(patient, facts),
        search=search,
        trials=matches,
        disclaimer=DISCLAIMER,
    )


def add_trials(
    evaluation: Evaluation,
    patient: PatientRecord,
    *,
    as_of: date,
    loaded: LoadedIndex,
    near: GeoPoint | None = None,
    limit: int = EVALUATE_TRIAL_LIMIT,
) -> Evaluation:
    """A copy of a label evaluation with the best-ranked adoptive cell therapy trials added
    (``trials``: the top ``limit`` ACT trials of every status; ``trial_search``: how they were chosen)."""
    report = match_patient(patient, as_of=as_of, loaded=loaded, near=near, act_only=True, limit=limit)
    return evaluation.model_copy(update={"trials": report.trials, "trial_search": report.search})


def evaluate_with_trials(
    patient: PatientRecord,
    *,
    as_of: date,
    loaded: LoadedIndex,
    near: GeoPoint | None = None,
    limit: int = EVALUATE_TRIAL_LIMIT,
) -> Evaluation:
    """The label evaluation of a patient with the matched trials: what ``actnav evaluate`` reports.

    :func:`actnav.eligibility.evaluate.evaluate_patient` stays label-only and pure; this composes
    it with :func:`add_trials`.
    """
    from actnav.eligibility.evaluate import evaluate_patient

    evaluation = evaluate_patient(patient, as_of=as_of)
    return add_trials(evaluation, patient, as_of=as_of, loaded=loaded, near=near, limit=limit)
