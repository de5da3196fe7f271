"""Intake from a clinical note: paste a referral letter, review the facts read from it, evaluate.

Pages (care team only; every write carries the CSRF token):

* ``GET /intake/note``: the form: the note (at most 100,000 characters), an optional label and the
  date the note describes (default today).
* ``POST /intake/note``: reads the note (:func:`actnav.patient.notes.extract.extract_note`, with the
  optional language model of ``ACTNAV_LLM_URL``) and shows the review page: the note with every
  fact's words highlighted (``<mark id="fact-f1">``, built here from the offsets and HTML-escaped; no
  script) beside the table of facts (kind, label, flags, whether it is used, and a choice
  accept / correct / reject per fact).
* ``POST /intake/note/confirm``: applies the decisions
  (:func:`actnav.patient.notes.bundle.apply_review`), writes the FHIR Bundle
  (:func:`~actnav.patient.notes.bundle.extraction_bundle`, without the note text) and registers the
  patient like an upload (:func:`actnav.care.intake.register_patient`, source ``note``), then
  redirects to the evaluation.

Between the two steps the extraction travels in the review form as a sealed token: the extraction
as JSON, compressed, base64url, a random nonce, and an HMAC-SHA256 keyed with a secret of this
server process and the session's CSRF token. Why: nothing of the note is stored on the server unless the patient is
registered (and the registered bundle leaves the note text out), no table or clean-up job is
needed, and a token only opens in the session that received it and only on this server, so the
facts marked as read by the rules or the language model are the ones this server read. A restarted
server or a new sign-in makes an open review expire (the note must be read again). The reviewer
can forge nothing they could not enter through the key-facts form anyway.
A token registers one patient: posting the same review again (a double click, back and resubmit)
redirects to the patient it registered (the server keeps the SHA-256 digests of used tokens in
memory, the newest :data:`MAX_CONSUMED_TOKENS`).

API (JSON, problem details on errors): ``POST /api/notes/extract`` returns the extraction;
``POST /api/patients/from-note`` reads the note again, applies the decisions by fact id and
registers the patient. The API uses the rules only (no language model), so the fact ids of the two
calls always agree.

Audit: ``extract`` (resource ``note``; counts only) and ``review`` (the registered patient;
counts of decisions), plus the ``create`` of :func:`register_patient`. No note text, span or
label ever goes into the audit detail.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import itertools
import secrets
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup, escape
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from actnav.care.intake import MAX_LABEL, Registered
from actnav.errors import ActnavError, InputError
from actnav.patient.notes.bundle import EARLIEST_DATE as EARLIEST
from actnav.patient.notes.bundle import Decision, apply_review, extraction_bundle, fact_uses
from actnav.patient.notes.model import MAX_NOTE_CHARS, NoteExtraction, NoteFact
from actnav.store.accounts import Account, audit
from actnav.web.deps import StaffAccount, StaffWriter, engine_of, patient_for, today, transaction
from actnav.web.fields import OneLine, form_errors
from actnav.web.routes.api import PROBLEMS, PatientOut, patient_out

router = APIRouter()

#: Largest sealed review token accepted (base64 of the compressed extraction).
MAX_TOKEN_CHARS = 4_000_000
MAX_EXTRACTION_BYTES = 16_000_000
FLAGS = ("negated", "historical", "family", "hypothetical", "uncertain")
FLAG_WORDS = {
    "negated": "negated",
    "historical": "history",
    "family": "someone else",
    "hypothetical": "hypothetical",
    "uncertain": "uncertain",
}
KIND_WORDS = {
    "age": "Age",
    "sex": "Sex",
    "diagnosis": "Diagnosis",
    "disease_status": "Disease status",
    "therapy": "Therapy",
    "transplant": "Transplant",
    "performance_status": "Performance status",
    "lab": "Laboratory value",
    "biomarker": "Biomarker",
    "hla": "HLA type",
    "cns_involvement": "CNS involvement",
    "infection": "Infection",
    "pregnancy": "Pregnancy",
}
ORIGIN_WORDS = {"rules": "rules", "language_model": "language model", "reviewer": "reviewer"}
ACTIONS = ("accept", "correct", "reject")
CORRECTABLE = ("label", "value", "number", "unit", "concept", "date")

# A secret of this server process: review tokens do not outlive it.
_PROCESS_SECRET = secrets.token_bytes(32)
#: Review tokens already used to register a patient (digest -> the patient's public id), newest
#: last; the oldest are forgotten past MAX_CONSUMED_TOKENS (tokens end with the process anyway).
_CONSUMED: OrderedDict[str, str] = OrderedDict()
MAX_CONSUMED_TOKENS = 10_000

NoteText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NOTE_CHARS, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$"),
]
FactId = Annotated[str, StringConstraints(pattern=r"^[a-z]{1,2}[0-9]{1,6}$")]
Label = Annotated[OneLine, StringConstraints(max_length=MAX_LABEL)]
_LABEL: TypeAdapter[str] = TypeAdapter(Label)


# -- the sealed extraction -----------------------------------------------------------------------


def _key(account: Account) -> bytes:
    return hmac.new(_PROCESS_SECRET, account.csrf_token.encode(), hashlib.sha256).digest()


def seal(extraction: NoteExtraction, account: Account) -> str:
    """The extraction as a token for the review form (see the module docstring)."""
    packed = base64.urlsafe_b64encode(zlib.compress(extraction.model_dump_json().encode(), 6)).decode()
    # A nonce makes every review its own token: reading the same note twice is two reviews, and
    # only the repeated post of one review is refused (single use, see mark_registered).
    body = f"{packed}.{secrets.token_urlsafe(12)}"
    mac = hmac.new(_key(account), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def unseal(token: str, account: Account) -> NoteExtraction:
    """The extraction a review form carries.

    Raises:
        InputError: ``where="review"`` when the token is malformed, from another session or server
            process (expired), or does not hold an extraction.
    """
    expired = InputError(
        "this review has expired or is not from this session", where="review", hint="read the note again"
    )
    body, _, mac = token.rpartition(".")
    if not body or len(token) > MAX_TOKEN_CHARS:
        raise expired
    expected = hmac.new(_key(account), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        raise expired
    packed = body.rpartition(".")[0]
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.urlsafe_b64decode(packed), MAX_EXTRACTION_BYTES)
        if inflater.unconsumed_tail:
            raise expired
        return NoteExtraction.model_validate_json(raw)
    except (binascii.Error, zlib.error, ValueError):
        raise expired from None


def token_digest(token: str) -> str:
    """A review token's digest, as :data:`_CONSUMED` keeps it (the token itself holds the note)."""
    return hashlib.sha256(token.encode()).hexdigest()


def registered_from(token: str) -> str | None:
    """The public id of the patient a review token already registered, or None (single use)."""
    return _CONSUMED.get(token_digest(token))


def mark_registered(token: str, public_id: str) -> None:
    """Remember that ``token`` registered patient ``public_id`` (bounded: the oldest go first)."""
    _CONSUMED[token_digest(token)] = public_id
    while len(_CONSUMED) > MAX_CONSUMED_TOKENS:
        _CONSUMED.popitem(last=False)


# -- the highlighted note ------------------------------------------------------------------------


def highlighted_note(extraction: NoteExtraction, uses: Mapping[str, str | None]) -> Markup:
    """The note as HTML with each fact's words in a ``<mark>`` (HTML-escaped, built from offsets).

    The first ``<mark>`` of a fact has ``id="fact-<id>"``; after its last one a link to the fact's
    row of the table. Overlapping spans are cut at every boundary, so no mark nests in another.
    A mark is ``used`` when some fact over it is written to the record, else ``unused``.
    """
    text = extraction.text
    facts = [f for f in extraction.facts if 0 <= f.span.start < f.span.end <= len(text)]
    bounds = sorted({0, len(text), *(f.span.start for f in facts), *(f.span.end for f in facts)})
    out: list[str] = []
    anchored: set[str] = set()
    for a, b in itertools.pairwise(bounds):
        piece = str(escape(text[a:b]))
        over = [f for f in facts if f.span.start <= a and b <= f.span.end]
        if not over:
            out.append(piece)
            continue
        starting = [f for f in over if f.id not in anchored]
        anchored.update(f.id for f in starting)
        for extra in starting[1:]:
            out.append(f'<span id="fact-{escape(extra.id)}"></span>')
        used = any(uses.get(f.id) is None for f in over)
        title = escape("; ".join(f"{f.id}: {f.label}" for f in over))
        ident = f' id="fact-{escape(starting[0].id)}"' if starting else ""
        css = "used" if used else "unused"
        out.append(f'<mark{ident} class="{css}" title="{title}">{piece}</mark>')
        for f in over:
            if f.span.end == b:
                out.append(f'<a class="fact-ref" href="#row-{escape(f.id)}">{escape(f.id)}</a>')
    return Markup("".join(out))


def fact_rows(extraction: NoteExtraction, uses: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """What the facts table shows per fact."""
    rows = []
    for f in extraction.facts:
        rows.append(
            {
                "id": f.id,
                "kind": KIND_WORDS.get(f.kind, f.kind),
                "kind_key": f.kind,
                "label": f.label,
                "words": f.span.text,
                "flags": [FLAG_WORDS[name] for name in FLAGS if getattr(f, name)],
                "not_used": uses.get(f.id),
                "origin": ORIGIN_WORDS.get(f.origin, f.origin),
                "review": f.review,
                "fact": f,
                # A language model's proposal counts only when a person accepts it.
                "default": "reject" if f.origin == "language_model" else "accept",
            }
        )
    return rows


# -- pages ---------------------------------------------------------------------------------------


class NoteForm(BaseModel):
    """The note form's fields."""

    model_config = ConfigDict(extra="ignore")

    note: NoteText
    label: Label = ""
    as_of: dt.date | None = None


def _as_of(value: dt.date | None, on: dt.date, where: str) -> dt.date:
    """The note's date: default today, not after today, not before 1900."""
    chosen = value or on
    if chosen > on:
        raise InputError(f"the date is after today ({on})", where=where)
    if chosen < EARLIEST:
        raise InputError("the date is before 1900", where=where)
    return chosen


@router.get("/intake/note", include_in_schema=False)
def note_form(request: Request, account: StaffAccount) -> Response:
    return _form_page(request, {}, {})


def _form_page(
    request: Request, values: Mapping[str, str], errors: Mapping[str, str], status_code: int = 200
) -> Response:
    from actnav.web.templating import page

    return page(
        request,
        "notes/intake.html.j2",
        title="New patient from a clinical note",
        active="patients",
        status_code=status_code,
        values=dict(values),
        errors=dict(errors),
        max_chars=MAX_NOTE_CHARS,
        today=today(request).isoformat(),
    )


@router.post("/intake/note", include_in_schema=False)
async def read_note(request: Request, account: StaffWriter) -> Response:
    from actnav.patient.notes.extract import extract_note
    from actnav.patient.notes.language_model import language_model_from_env

    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        checked = NoteForm.model_validate({k: v for k, v in values.items() if v != "" or k == "note"})
        as_of = _as_of(checked.as_of, today(request), "as_of")
    except ValidationError as err:
        return _form_page(request, values, _form_problems(form_errors(err)), status_code=422)
    except InputError as err:
        return _form_page(request, values, {"as_of": err.message}, status_code=422)
    problem: str | None = None
    try:
        model = language_model_from_env()
    except InputError as err:  # a misconfigured server: read with the rules, say why
        model = None
        problem = str(err)
    try:
        extraction = extract_note(checked.note, as_of=as_of, language_model=model)
    except InputError as err:
        return _form_page(request, values, {err.where or "note": err.message}, status_code=422)
    if problem:
        extraction = extraction.model_copy(
            update={"warnings": (*extraction.warnings, f"language model not used: {problem}")}
        )
    with transaction(request) as session:
        _audit_extract(session, account, extraction, language_model=model is not None)
    return _review_page(request, account, extraction, label=checked.label)


def _form_problems(errors: Mapping[str, str]) -> dict[str, str]:
    words = {"note": "the note is empty, longer than 100,000 characters or holds a NUL character"}
    return {name: words.get(name, problem) for name, problem in errors.items()}


def _audit_extract(
    session: Any, account: Account, extraction: NoteExtraction, *, language_model: bool
) -> None:
    audit(
        session,
        account,
        "extract",
        "note",
        detail=f"facts={len(extraction.facts)} unparsed={len(extraction.unparsed)} "
        f"language_model={'on' if language_model else 'off'}",
    )


def _review_page(
    request: Request,
    account: Account,
    extraction: NoteExtraction,
    *,
    label: str,
    chosen: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    from actnav.care import keyfacts as kf
    from actnav.web.templating import page

    uses = fact_uses(extraction)
    return page(
        request,
        "notes/review.html.j2",
        title="Review the facts read from the note",
        active="patients",
        status_code=status_code,
        note=highlighted_note(extraction, uses),
        rows=fact_rows(extraction, uses),
        extraction=extraction,
        token=seal(extraction, account),
        label=label,
        chosen=dict(chosen or {}),
        errors=dict(errors or {}),
        diagnoses=kf.diagnosis_choices(),
        therapy_names=kf.therapy_names(),
        used=sum(1 for v in uses.values() if v is None),
    )


def read_decisions(values: Mapping[str, str], extraction: NoteExtraction) -> dict[str, Decision]:
    """The decisions of the review form: ``decision-<id>`` (accept/correct/reject) and, for a
    correction, ``<id>-label``, ``-value``, ``-number``, ``-unit``, ``-concept``, ``-date``.

    Raises:
        InputError: ``where="<id>-<field>"`` (or ``decision-<id>``) for an invalid choice or value.
    """
    out: dict[str, Decision] = {}
    for fact in extraction.facts:
        action = values.get(f"decision-{fact.id}", "").strip() or "accept"
        if action not in ACTIONS:
            raise InputError("choose accept, correct or reject", where=f"decision-{fact.id}")
        fields = {}
        if action == "correct":
            fields = {
                name: values[f"{fact.id}-{name}"].strip()
                for name in CORRECTABLE
                if values.get(f"{fact.id}-{name}", "").strip()
            }
            fields = {k: v for k, v in fields.items() if v != _shown(fact, k)}
            if not fields:
                raise InputError("change at least one field to correct this fact", where=f"{fact.id}-label")
        try:
            out[fact.id] = DecisionIn.model_validate({"action": action, **fields})
        except ValidationError as err:
            first = err.errors()[0]
            field = str(first["loc"][0]) if first.get("loc") else "label"
            raise InputError(str(first["msg"]), where=f"{fact.id}-{field}") from None
    return out


def _shown(fact: NoteFact, name: str) -> str:
    """A fact's field as the correction form shows it (unchanged fields are not corrections)."""
    value = getattr(fact, name)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@router.post("/intake/note/confirm", include_in_schema=False)
async def confirm_note(request: Request, account: StaffWriter) -> Response:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        extraction = unseal(values.get("review", ""), account)
    except InputError as err:
        return _form_page(request, {}, {"note": str(err)}, status_code=422)
    # A form posted twice (double click, back and resubmit) registers one patient: the review
    # token is single-use and its second post goes to the patient it made. The handler does not
    # await between this check and mark_registered, so posts on one server do not interleave.
    token = values.get("review", "")
    first = registered_from(token)
    if first is not None:
        return RedirectResponse(f"/patients/{first}", status_code=303)
    label = values.get("label", "")
    try:
        label = _LABEL.validate_python(label)
    except ValidationError:
        return _review_page(
            request, account, extraction, label="", chosen=values,
            errors={"label": f"one line of at most {MAX_LABEL} characters"}, status_code=422,
        )  # fmt: skip
    try:
        decisions = read_decisions(values, extraction)
        birth_date = _birth_date(values.get("birth_date", "").strip(), min(today(request), extraction.as_of))
        done = _register(request, account, extraction, decisions, label=label, birth_date=birth_date)
        mark_registered(token, done.public_id)
    except ActnavError as err:
        return _review_page(
            request, account, extraction, label=label, chosen=values, errors={_form_field(err.where): str(err)},
            status_code=422,
        )  # fmt: skip
    return RedirectResponse(f"/patients/{done.public_id}", status_code=303)


def _form_field(where: str | None) -> str:
    """The review form's field for an error's ``where``: the bundle writer names a correction
    ``decisions.<id>.<field>``, the form calls that field ``<id>-<field>``."""
    if where is None:
        return "review"
    parts = where.split(".")
    if len(parts) == 3 and parts[0] == "decisions":
        return f"{parts[1]}-{parts[2]}"
    return where


def _birth_date(text: str, on: dt.date) -> dt.date | None:
    if not text:
        return None
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        raise InputError("not a date (YYYY-MM-DD)", where="birth_date") from None
    if value > on or value < EARLIEST:
        raise InputError("the date of birth must lie between 1900 and the note's date", where="birth_date")
    return value


def _register(
    request: Request,
    account: Account,
    extraction: NoteExtraction,
    decisions: Mapping[str, Decision],
    *,
    label: str | None,
    birth_date: dt.date | None,
) -> Registered:
    """Apply the decisions, write the bundle, register the patient and audit the review.

    Raises:
        InputError: a decision names no fact or a correction is invalid; the note gives no age and
            no birth date is given; the bundle cannot be read (naming the element).
    """
    from actnav.care.intake import register_patient

    reviewed = apply_review(extraction, decisions)
    bundle = extraction_bundle(reviewed, birth_date=birth_date)
    done = register_patient(
        engine_of(request), bundle, as_of=extraction.as_of, actor=account, source="note", label=label or None
    )
    counts = {a: sum(1 for d in decisions.values() if d.action == a) for a in ACTIONS}
    with transaction(request) as session:
        row = patient_for(session, account, done.public_id)
        audit(
            session,
            account,
            "review",
            "note",
            row.public_id,
            patient_id=row.id,
            detail=" ".join(f"{a}={n}" for a, n in counts.items()) + f" facts={len(extraction.facts)}",
        )
    return done


# -- API -----------------------------------------------------------------------------------------


class NoteIn(BaseModel):
    """A clinical note to read."""

    model_config = ConfigDict(extra="forbid")

    text: NoteText = Field(description="The note as plain text (at most 100,000 characters).")
    as_of: dt.date | None = Field(
        default=None, description="The date the note describes (default today; not after today)."
    )


class DecisionIn(Decision):
    """A reviewer's decision on one fact: accept, reject, or correct (giving at least one field)."""

    label: Annotated[OneLine, StringConstraints(min_length=1, max_length=200)] | None = None
    value: Annotated[OneLine, StringConstraints(min_length=1, max_length=100)] | None = None
    number: Annotated[float, Field(allow_inf_nan=False, ge=-1e9, le=1e9)] | None = None
    unit: Annotated[OneLine, StringConstraints(min_length=1, max_length=40)] | None = None
    concept: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_ +./-]{0,63}$")] | None = None
    date: Annotated[dt.date, Field(ge=EARLIEST)] | None = None


class FromNoteIn(NoteIn):
    """A note to register a patient from, with the reviewer's decisions by fact id."""

    label: Label | None = Field(default=None, description="The care team's name for the record.")
    birth_date: dt.date | None = Field(
        default=None, description="The date of birth, when known (replaces the estimate from a stated age)."
    )
    decisions: dict[FactId, DecisionIn] = Field(
        default_factory=dict,
        max_length=2000,
        description="Fact id (from /api/notes/extract) -> accept, correct (with the corrected fields) "
        "or reject. Facts without a decision are taken as read.",
    )


def _api_as_of(request: Request, body: NoteIn) -> dt.date:
    try:
        return _as_of(body.as_of, today(request), "as_of")
    except InputError as err:
        raise RequestValidationError(
            [{"loc": ("body", "as_of"), "msg": err.message, "type": "value_error"}]
        ) from None


@router.post("/api/notes/extract", response_model=NoteExtraction, tags=["notes"], responses=PROBLEMS)
def api_extract_note(
    request: Request, account: StaffWriter, body: Annotated[NoteIn, Body()]
) -> NoteExtraction:
    """Read the facts of a clinical note (care team only; nothing is stored).

    Each fact has its words (``span``: offsets into ``text``), the sentence, and the ConText flags
    (negated, historical, about someone else, hypothetical, uncertain); only facts about the
    patient become patient facts. Rules only (no language model), so the ids match those that
    ``POST /api/patients/from-note`` reads.
    """
    from actnav.patient.notes.extract import extract_note

    extraction = extract_note(body.text, as_of=_api_as_of(request, body))
    with transaction(request) as session:
        _audit_extract(session, account, extraction, language_model=False)
    return extraction


@router.post(
    "/api/patients/from-note",
    response_model=PatientOut,
    status_code=201,
    tags=["patients", "notes"],
    responses=PROBLEMS,
)
def api_patient_from_note(
    request: Request, account: StaffWriter, body: Annotated[FromNoteIn, Body()]
) -> PatientOut:
    """Register a patient from a clinical note and evaluate it (care team only).

    The note is read again by the rules, the decisions are applied by fact id, and the facts are
    written as a FHIR R4 Bundle (without the note text) and registered like an upload. 422 names a
    decision for an unknown fact, an invalid correction, or a note without an age (give
    ``birth_date``).
    """
    from actnav.patient.notes.extract import extract_note

    as_of = _api_as_of(request, body)
    if body.birth_date is not None and not (EARLIEST <= body.birth_date <= today(request)):
        raise RequestValidationError(
            [{"loc": ("body", "birth_date"), "msg": "must lie between 1900 and today", "type": "value_error"}]
        )
    extraction = extract_note(body.text, as_of=as_of)
    with transaction(request) as session:
        _audit_extract(session, account, extraction, language_model=False)
    done = _register(
        request, account, extraction, body.decisions, label=body.label, birth_date=body.birth_date
    )
    with transaction(request) as session:
        return patient_out(patient_for(session, account, done.public_id), as_of)
