"""Intake from key facts: the form on ``/patients/new`` and ``POST /api/patients/keyfacts``.

Both paths validate the key facts (:func:`actnav.care.keyfacts.parse_keyfacts`), write them as a
FHIR R4 Bundle (:func:`actnav.care.keyfacts.keyfacts_to_bundle`) and register that bundle like an
upload (:func:`actnav.care.intake.register_patient`, source ``form``): the web never builds a
patient record itself. Invalid input answers 422 naming every bad field and stores nothing.

``GET /patients/new`` is served by :mod:`actnav.web.routes.patients`; its template calls the
``keyfacts_form()`` template global registered here for the blank form (choices from the
terminology tables). Form field names (a browser test may fill them):

* ``label``; ``birth_date`` (required), ``sex``; ``diagnosis`` (required, a concept id),
  ``diagnosis_date``, ``unresectable_or_metastatic`` (check box, ``yes``);
* disease course rows ``status_N`` and ``status_N_date`` (N = 1..4);
* prior therapies ``therapy_N_name``, ``therapy_N_start``, ``therapy_N_end``, ``therapy_N_line``
  (N = 1..6);
* ``transplant_N_type``, ``transplant_N_date`` (N = 1..2), ``transplant_ineligible`` (yes/no);
* ``ecog``, ``ecog_date``;
* labs ``<key>_value``, ``<key>_unit``, ``<key>_date`` and for some ``<key>_uln`` (keys: anc,
  platelets, alc, hemoglobin, creatinine, creatinine_clearance, bilirubin, alt, ast, lvef,
  spo2); ``labs_date`` is the date of every result without its own;
* ``hla_a_1``, ``hla_a_2``, ``hla_date``; ``braf_v600`` (positive/negative/indeterminate),
  ``braf_variant``, ``braf_date``; ``mage_a4``, ``mage_a4_date``;
* ``cns_involvement``, ``cns_date``; ``active_infection``, ``infection_date``; ``pregnancy``,
  ``pregnancy_date`` (yes/no); ``hiv``, ``hbv``, ``hcv`` (positive/negative/indeterminate),
  ``serology_date``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from pydantic import StringConstraints, TypeAdapter, ValidationError

from actnav.care import keyfacts as kf
from actnav.care.intake import MAX_LABEL
from actnav.web.deps import StaffWriter, engine_of, patient_for, today, transaction
from actnav.web.fields import OneLine
from actnav.web.routes.api import PROBLEMS, PatientOut
from actnav.web.templating import page, templates

router = APIRouter()

STATUS_ROWS = 4
THERAPY_ROWS = 6
TRANSPLANT_ROWS = 2
#: Labs whose upper limit of normal the rules use (ALT/AST x ULN; bilirubin and creatinine x ULN
#: in trial criteria).
ULN_LABS = frozenset({"alt", "ast", "bilirubin", "creatinine"})
RESULTS = {"positive": "Positive", "negative": "Negative", "indeterminate": "Indeterminate"}
YES_NO = {"yes": "Yes", "no": "No"}
TRANSPLANT_TYPES = {"autologous": "Autologous", "allogeneic": "Allogeneic", "unknown": "Type not recorded"}
SEXES = {"female": "Female", "male": "Male", "other": "Other"}

Loc = tuple[str | int, ...]
_LABEL: TypeAdapter[str] = TypeAdapter(Annotated[OneLine, StringConstraints(max_length=MAX_LABEL)])


def field_labels() -> dict[str, str]:
    """The label of every form field, for error messages."""
    labels = {
        "label": "Label for the care team",
        "birth_date": "Date of birth",
        "sex": "Sex",
        "diagnosis": "Diagnosis",
        "diagnosis_date": "Date of diagnosis",
        "unresectable_or_metastatic": "Unresectable or metastatic disease",
        "transplant_ineligible": "Not eligible for stem cell transplant",
        "ecog": "ECOG performance status",
        "ecog_date": "Date of the ECOG assessment",
        "labs_date": "Date of the results",
        "hla_a_1": "HLA-A allele 1",
        "hla_a_2": "HLA-A allele 2",
        "hla_date": "Date of the HLA typing",
        "braf_v600": "BRAF V600 mutation",
        "braf_variant": "BRAF change found",
        "braf_date": "Date of the BRAF test",
        "mage_a4": "MAGE-A4 expression (IHC)",
        "mage_a4_date": "Date of the MAGE-A4 test",
        "cns_involvement": "Active CNS involvement",
        "cns_date": "Date of the CNS assessment",
        "active_infection": "Active uncontrolled infection",
        "infection_date": "Date of the infection assessment",
        "pregnancy": "Pregnant",
        "pregnancy_date": "Date of the pregnancy status",
        "hiv": "HIV screening",
        "hbv": "Hepatitis B screening (HBsAg)",
        "hcv": "Hepatitis C screening (HCV RNA)",
        "serology_date": "Date of the screening tests",
    }
    for n in range(1, STATUS_ROWS + 1):
        labels[f"status_{n}"] = f"Disease status {n}"
        labels[f"status_{n}_date"] = f"Date of disease status {n}"
    for n in range(1, THERAPY_ROWS + 1):
        labels[f"therapy_{n}_name"] = f"Therapy {n}: drug or regimen"
        labels[f"therapy_{n}_start"] = f"Therapy {n}: start"
        labels[f"therapy_{n}_end"] = f"Therapy {n}: end"
        labels[f"therapy_{n}_line"] = f"Therapy {n}: line"
    for n in range(1, TRANSPLANT_ROWS + 1):
        labels[f"transplant_{n}_type"] = f"Transplant {n}: type"
        labels[f"transplant_{n}_date"] = f"Transplant {n}: date"
    for key in kf.LAB_KEYS:
        name = kf.lab_label(key)
        labels[f"{key}_value"] = name
        labels[f"{key}_unit"] = f"{name}: unit"
        labels[f"{key}_date"] = f"{name}: date"
        labels[f"{key}_uln"] = f"{name}: upper limit of normal"
    return labels


def read_form(values: Mapping[str, str]) -> tuple[dict[str, Any], dict[Loc, str]]:
    """The form fields as key facts data, and which form field each key-fact location came from.

    Empty fields are left out (unknown stays unknown); a row of a list counts when any of its
    fields is filled. Nothing is converted here: the key-facts model validates every value.
    """

    def get(name: str) -> str:
        return values.get(name, "").strip()

    data: dict[str, Any] = {}
    where: dict[Loc, str] = {}

    def put(name: str, value: Any) -> None:
        where[(name,)] = name
        if value not in ("", None):
            data[name] = value

    for name in ("birth_date", "sex", "diagnosis", "diagnosis_date"):
        put(name, get(name))
    put("unresectable_or_metastatic", True if get("unresectable_or_metastatic") else None)
    put("transplant_ineligible", _yes_no(get("transplant_ineligible")))

    _rows(
        data, where, "disease_course", get, STATUS_ROWS,
        {"status": "status_{n}", "date": "status_{n}_date"},
    )  # fmt: skip
    _rows(
        data, where, "therapies", get, THERAPY_ROWS,
        {"name": "therapy_{n}_name", "start": "therapy_{n}_start", "end": "therapy_{n}_end", "line": "therapy_{n}_line"},
    )  # fmt: skip
    _rows(
        data, where, "transplants", get, TRANSPLANT_ROWS,
        {"type": "transplant_{n}_type", "date": "transplant_{n}_date"},
    )  # fmt: skip

    _item(data, where, "ecog", {"value": ("ecog", get("ecog")), "date": ("ecog_date", get("ecog_date"))})
    common = get("labs_date")
    labs: dict[str, Any] = {}
    for key in kf.LAB_KEYS:
        fields = {
            "value": (f"{key}_value", get(f"{key}_value")),
            "unit": (f"{key}_unit", get(f"{key}_unit")),
            "upper_limit_normal": (f"{key}_uln", get(f"{key}_uln")),
        }
        where[("labs", key)] = f"{key}_value"
        if not fields["value"][1] and not fields["upper_limit_normal"][1] and not get(f"{key}_date"):
            continue  # a unit alone (the select's default) is not a result
        fields["date"] = (f"{key}_date" if get(f"{key}_date") else "labs_date", get(f"{key}_date") or common)
        labs[key] = {k: v for k, (_, v) in fields.items() if v}
        where.update({("labs", key, k): name for k, (name, _) in fields.items()})
    if labs:
        data["labs"] = labs

    alleles = [(name, get(name)) for name in ("hla_a_1", "hla_a_2") if get(name)]
    if alleles or get("hla_date"):
        data["hla_a"] = {"alleles": [a for _, a in alleles]}
        if get("hla_date"):
            data["hla_a"]["date"] = get("hla_date")
    where[("hla_a",)] = "hla_a_1"
    where[("hla_a", "alleles")] = "hla_a_1"
    where[("hla_a", "date")] = "hla_date"
    for i, (name, _) in enumerate(alleles):
        where[("hla_a", "alleles", i)] = name

    _item(data, where, "braf_v600", {
        "result": ("braf_v600", get("braf_v600")),
        "variant": ("braf_variant", get("braf_variant")),
        "date": ("braf_date", get("braf_date")),
    })  # fmt: skip
    _item(
        data,
        where,
        "mage_a4",
        {"result": ("mage_a4", get("mage_a4")), "date": ("mage_a4_date", get("mage_a4_date"))},
    )
    for name in ("hiv", "hbv", "hcv"):
        # The screening date applies only to the tests entered.
        date = get("serology_date") if get(name) else ""
        _item(data, where, name, {"result": (name, get(name)), "date": ("serology_date", date)})
    for name, date_field in (("cns_involvement", "cns_date"), ("active_infection", "infection_date"),
                             ("pregnancy", "pregnancy_date")):  # fmt: skip
        _item(
            data, where, name, {"present": (name, _yes_no(get(name))), "date": (date_field, get(date_field))}
        )
    return data, where


def _yes_no(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def _rows(
    data: dict[str, Any],
    where: dict[Loc, str],
    key: str,
    get: Callable[[str], str],
    count: int,
    fields: dict[str, str],
) -> None:
    rows: list[dict[str, str]] = []
    for n in range(1, count + 1):
        names = {k: pattern.format(n=n) for k, pattern in fields.items()}
        given = {k: get(name) for k, name in names.items() if get(name)}
        if not given:
            continue
        i = len(rows)
        rows.append(given)
        where[(key, i)] = next(iter(names.values()))
        where.update({(key, i, k): name for k, name in names.items()})
    if rows:
        data[key] = rows


def _item(data: dict[str, Any], where: dict[Loc, str], key: str, fields: dict[str, tuple[str, Any]]) -> None:
    where[(key,)] = next(iter(fields.values()))[0]
    where.update({(key, k): name for k, (name, _) in fields.items()})
    given = {k: v for k, (_, v) in fields.items() if v not in ("", None)}
    if given:
        data[key] = given


def form_field(loc: Loc, where: Mapping[Loc, str]) -> str:
    """The form field a key-fact location came from: the longest known prefix of ``loc``."""
    for end in range(len(loc), 0, -1):
        found = where.get(loc[:end])
        if found is not None:
            return found
    return "keyfacts"


def form_context(
    values: Mapping[str, str] | None = None, errors: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What the key-facts form shows: choices from the terminology, entered values, errors."""
    return {
        "values": dict(values or {}),
        "errors": dict(errors or {}),
        "labels": field_labels(),
        "diagnoses": kf.diagnosis_choices(),
        "therapy_names": kf.therapy_names(),
        "statuses": kf.STATUS_LABELS,
        "labs": [
            {"key": key, "label": kf.lab_label(key), "units": kf.lab_units(key), "uln": key in ULN_LABS}
            for key in kf.LAB_KEYS
        ],
        "ecog_scale": kf.ecog_scale(),
        "results": RESULTS,
        "yes_no": YES_NO,
        "transplant_types": TRANSPLANT_TYPES,
        "sexes": SEXES,
        "status_rows": range(1, STATUS_ROWS + 1),
        "therapy_rows": range(1, THERAPY_ROWS + 1),
        "transplant_rows": range(1, TRANSPLANT_ROWS + 1),
    }


# The blank form for GET /patients/new (rendered by routes/patients.py).
templates().env.globals["keyfacts_form"] = form_context


@router.post("/patients/form", include_in_schema=False)
async def intake_keyfacts_form(request: Request, account: StaffWriter) -> Response:
    from actnav.care.intake import register_patient
    from actnav.errors import ActnavError

    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    data, where = read_form(values)
    errors: dict[str, str] = {}
    try:
        label = _LABEL.validate_python(values.get("label", ""))
    except ValidationError:
        label = ""
        errors["label"] = f"one line of at most {MAX_LABEL} characters"
    on = today(request)
    try:
        facts = kf.parse_keyfacts(data, as_of=on)
    except kf.KeyFactsError as err:
        for problem in err.problems:
            errors.setdefault(form_field(problem.loc, where), problem.message)
    if errors:
        return _form_page(request, values, errors)
    try:
        bundle = kf.keyfacts_to_bundle(facts)
        done = register_patient(
            engine_of(request), bundle, as_of=on, actor=account, source="form", label=label
        )
    except ActnavError as err:
        return _form_page(request, values, {"keyfacts": str(err)})
    return RedirectResponse(f"/patients/{done.public_id}", status_code=303)


def _form_page(request: Request, values: Mapping[str, str], errors: Mapping[str, str]) -> Response:
    return page(
        request,
        "patients/new.html.j2",
        title="New patient",
        status_code=422,
        error=None,
        keyfacts=form_context(values, errors),
    )


@router.post(
    "/api/patients/keyfacts",
    response_model=PatientOut,
    status_code=201,
    tags=["patients"],
    responses=PROBLEMS,
)
def create_patient_from_keyfacts(
    request: Request,
    account: StaffWriter,
    facts: Annotated[
        kf.KeyFacts, Body(description="The key facts; only birth_date and diagnosis are required.")
    ],
    label: Annotated[OneLine | None, Query(max_length=200)] = None,
) -> PatientOut:
    """Register a patient from key facts and evaluate it (care team only).

    The key facts are written as a FHIR R4 Bundle (docs/fhir-input.md) and read back by the same
    importer as an uploaded bundle; facts not given stay unknown. 422 names every invalid field
    (dates after today, a birth date giving an implausible age, values outside the plausible range).
    """
    from actnav.care.intake import register_patient

    on = today(request)
    try:
        checked = kf.parse_keyfacts(facts.model_dump(mode="json"), as_of=on)
    except kf.KeyFactsError as err:
        raise RequestValidationError(
            [{"loc": ("body", *p.loc), "msg": p.message, "type": "value_error"} for p in err.problems]
        ) from None
    done = register_patient(
        engine_of(request),
        kf.keyfacts_to_bundle(checked),
        as_of=on,
        actor=account,
        source="form",
        label=label,
    )
    with transaction(request) as session:
        row = patient_for(session, account, done.public_id)
        return PatientOut(
            id=row.public_id,
            label=row.label,
            source=row.source,
            created_at=row.created_at,
            evaluated_as_of=on,
        )
