"""The input of ``actnav toxicity risk``: labs with units (and a few clinical findings) -> risk scores.

One JSON object::

    {
      "timing": "before lymphodepletion",          # optional, free text, echoed
      "scores": ["easix", "m_easix", "car_hematotox", "hscore", "iec_hs"],   # optional
      "labs": {
        "ldh":         {"value": 320,   "unit": "U/L", "uln": 250},
        "creatinine":  {"value": 97,    "unit": "umol/L"},
        "platelets":   {"value": 95000, "unit": "/uL"},
        "crp":         {"value": 42,    "unit": "mg/L"},
        "anc":         {"value": 1.1,   "unit": "10^9/L"},
        "hemoglobin":  {"value": 8.7,   "unit": "g/dL"},
        "ferritin":    {"value": 2400,  "unit": "ng/mL", "uln": 300, "baseline": 900},
        "wbc":         {"value": 2.1,   "unit": "10^9/L"},
        "triglycerides": {"value": 2.3, "unit": "mmol/L"},
        "fibrinogen":  {"value": 1.4,   "unit": "g/L"},
        "ast":         {"value": 95,    "unit": "U/L", "uln": 40},
        "alt":         {"value": 120,   "unit": "U/L", "uln": 45},
        "bilirubin":   {"value": 1.9,   "unit": "mg/dL", "uln": 1.2}
      },
      "clinical": {
        "temp_c": 39.1, "immunosuppression": false, "hepatomegaly": false, "splenomegaly": true,
        "hemophagocytosis": null, "cytopenia": true, "coagulopathy": false, "renal_injury": false,
        "ferritin_rapidly_rising": true, "onset": "after_crs_resolved", "iec_hs_severity": null
      }
    }

Every lab is ``{"value", "unit"}`` with an optional ``uln`` and ``baseline`` in the same unit.
Units are converted (creatinine umol/L -> mg/dL, CRP mg/L -> mg/dL, platelets and counts per uL
-> 10^9/L, haemoglobin g/L -> g/dL, fibrinogen g/L -> mg/dL, triglycerides mmol/L -> mg/dL).

Without ``scores``, every score whose inputs are present is computed and the others are listed in
``not_computed`` with what they need; with ``scores``, a missing input is an error. The HScore is
computed by default only when one of its own items (temperature, organomegaly, triglycerides,
fibrinogen, haemophagocytosis, immunosuppression) is given, and IEC-HS only when ferritin has a
ULN or baseline, or an IEC-HS finding is given. Every error is an :class:`~actnav.errors.InputError`
whose ``where`` is the input path (``labs.creatinine.unit``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from actnav.errors import InputError
from actnav.toxicity.iec_hs import IecHsAssessment, OnsetPattern, assess_iec_hs
from actnav.toxicity.models import (
    Number,
    StrictBool,
    _bounded,
    _check_plausible,
    _Input,
    fahrenheit_to_celsius,
    validate_input,
)
from actnav.toxicity.risk import (
    EasixResult,
    HematotoxResult,
    HScoreResult,
    car_hematotox,
    convert,
    easix_score,
    hscore,
    load_risk_scores,
    m_easix_score,
    ucum,
)

ScoreName = Literal["easix", "m_easix", "car_hematotox", "hscore", "iec_hs"]
SCORE_NAMES: tuple[ScoreName, ...] = ("easix", "m_easix", "car_hematotox", "hscore", "iec_hs")
LAB_NAMES = (
    "ldh",
    "creatinine",
    "platelets",
    "crp",
    "anc",
    "hemoglobin",
    "ferritin",
    "wbc",
    "triglycerides",
    "fibrinogen",
    "ast",
    "alt",
    "bilirubin",
)

NonNegative = Annotated[float, Field(ge=0, strict=True)]
Positive = Annotated[float, Field(gt=0, strict=True)]


class Lab(_Input):
    """One laboratory value with its unit, and optionally the lab's ULN and the patient's baseline."""

    value: NonNegative
    unit: str = Field(
        min_length=1, description="UCUM code or usual spelling: U/L, umol/L, mg/L, /uL, 10^9/L ..."
    )
    uln: Positive | None = Field(default=None, description="Upper limit of normal, in the same unit.")
    baseline: Positive | None = Field(default=None, description="Baseline (e.g. at infusion), same unit.")


class Labs(_Input):
    """The labs the risk scores use (all optional)."""

    ldh: Lab | None = None
    creatinine: Lab | None = None
    platelets: Lab | None = None
    crp: Lab | None = None
    anc: Lab | None = None
    hemoglobin: Lab | None = None
    ferritin: Lab | None = None
    wbc: Lab | None = None
    triglycerides: Lab | None = None
    fibrinogen: Lab | None = None
    ast: Lab | None = None
    alt: Lab | None = None
    bilirubin: Lab | None = None


class Clinical(_Input):
    """Clinical findings for the HScore and the IEC-HS evidence list (all optional)."""

    temp_c: Number | None = _bounded("temp_c", "Highest temperature, degrees C (HScore).")
    temp_f: Number | None = _bounded("temp_f", "Highest temperature, degrees F (converted).")
    immunosuppression: StrictBool | None = None
    hepatomegaly: StrictBool | None = None
    splenomegaly: StrictBool | None = None
    hemophagocytosis: StrictBool | None = None
    cytopenia: StrictBool | None = Field(default=None, description="New or worsening cytopenias (IEC-HS).")
    coagulopathy: StrictBool | None = None
    renal_injury: StrictBool | None = None
    ferritin_rapidly_rising: StrictBool | None = None
    onset: OnsetPattern | None = Field(default=None, description="Onset relative to CRS (IEC-HS).")
    iec_hs_severity: (
        Literal["mild_no_intervention", "needs_intervention", "severe", "life_threatening", "death"] | None
    ) = Field(default=None, description="Clinician-selected IEC-HS severity (gives the grade).")

    @field_validator("temp_c", "temp_f", mode="before")
    @classmethod
    def _plausible(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_plausible(str(info.field_name), value)


class RiskInput(_Input):
    """Input of ``actnav toxicity risk``."""

    timing: str | None = Field(default=None, description="When the labs were drawn (free text, echoed).")
    scores: tuple[ScoreName, ...] | None = Field(
        default=None, description="Scores to compute (default: all possible)."
    )
    labs: Labs
    clinical: Clinical = Clinical()


class RiskReport(BaseModel):
    """The output of ``actnav toxicity risk``."""

    model_config = ConfigDict(extra="forbid")

    timing: str | None
    easix: EasixResult | None = None
    m_easix: EasixResult | None = None
    car_hematotox: HematotoxResult | None = None
    hscore: HScoreResult | None = None
    iec_hs: IecHsAssessment | None = None
    not_computed: dict[str, str] = Field(description="Scores not computed, with what they need.")
    unconfirmed: list[str] = Field(description="Scores resting on a cut-off or rule tagged R or U.")
    notes: list[str]


_REQUIRED: dict[ScoreName, tuple[str, ...]] = {
    "easix": ("ldh", "creatinine", "platelets"),
    "m_easix": ("ldh", "crp", "platelets"),
    "car_hematotox": ("platelets", "anc", "hemoglobin", "crp", "ferritin"),
    "hscore": (),
    "iec_hs": (),
}
_TITLES: dict[ScoreName, str] = {
    "easix": "EASIX",
    "m_easix": "m-EASIX",
    "car_hematotox": "CAR-HEMATOTOX",
    "hscore": "HScore",
    "iec_hs": "IEC-HS",
}


def _path(where: str | None, clinical: Clinical) -> str | None:
    """The input path for a calculator's field name (``creatinine_unit`` -> ``labs.creatinine.unit``)."""
    if where is None or where.startswith(("labs.", "clinical.")):
        return where
    parts = where.split("_")
    if parts[0] in LAB_NAMES:
        rest = parts[1:]
        if rest[:1] in (["unit"], ["uln"], ["baseline"]):
            return f"labs.{parts[0]}.{rest[0]}"
        return f"labs.{parts[0]}.value"
    if where == "temperature_c":
        return (
            "clinical.temp_f"
            if clinical.temp_c is None and clinical.temp_f is not None
            else "clinical.temp_c"
        )
    if where == "severity":
        return "clinical.iec_hs_severity"
    return f"clinical.{where}"


@contextlib.contextmanager
def _named(clinical: Clinical) -> Iterator[None]:
    """Re-raise a calculator's InputError (or UnitError) with ``where`` as the input path."""
    try:
        yield
    except InputError as exc:
        raise type(exc)(exc.message, where=_path(exc.where, clinical), hint=exc.hint) from exc


def _lab_in(lab: Lab, name: str, target: str) -> tuple[float, float | None, float | None]:
    """(value, uln, baseline) of a lab converted to ``target``; errors name ``labs.<name>.unit``."""
    field = f"labs.{name}.unit"
    value = convert(lab.value, lab.unit, target, field=field)
    uln = None if lab.uln is None else convert(lab.uln, lab.unit, target, field=field)
    baseline = None if lab.baseline is None else convert(lab.baseline, lab.unit, target, field=field)
    return value, uln, baseline


def _enzyme(lab: Lab, name: str) -> Lab:
    """ALT, AST and LDH must be in U/L (or IU/L)."""
    if ucum(lab.unit, f"labs.{name}.unit") not in ("U/L", "[IU]/L"):
        raise InputError(
            f"{name.upper()} must be in U/L (or IU/L), got {lab.unit!r}", where=f"labs.{name}.unit"
        )
    return lab


def _wanted(data: RiskInput) -> tuple[list[ScoreName], dict[ScoreName, str]]:
    labs, clinical = data.labs, data.clinical
    present = {name for name in LAB_NAMES if getattr(labs, name) is not None}
    if data.scores is not None:
        for score in data.scores:
            for name in _REQUIRED[score]:
                if name not in present:
                    raise InputError(f"is required for {_TITLES[score]}", where=f"labs.{name}")
        return list(dict.fromkeys(data.scores)), {}
    wanted: list[ScoreName] = []
    skipped: dict[ScoreName, str] = {}
    for score in SCORE_NAMES:
        missing = [name for name in _REQUIRED[score] if name not in present]
        if missing:
            skipped[score] = "needs labs." + ", labs.".join(missing)
            continue
        if score == "hscore":
            own = (
                clinical.temp_c,
                clinical.temp_f,
                clinical.hepatomegaly,
                clinical.splenomegaly,
                clinical.hemophagocytosis,
                clinical.immunosuppression,
                labs.triglycerides,
                labs.fibrinogen,
            )
            if all(item is None for item in own):
                skipped[score] = (
                    "needs at least one HScore item beyond the blood counts: clinical.temp_c, "
                    "organomegaly, haemophagocytosis, immunosuppression, labs.triglycerides or "
                    "labs.fibrinogen"
                )
                continue
        if score == "iec_hs":
            ferritin = labs.ferritin
            findings = (
                clinical.ferritin_rapidly_rising,
                clinical.onset,
                clinical.cytopenia,
                clinical.coagulopathy,
                clinical.renal_injury,
                clinical.iec_hs_severity,
            )
            if (ferritin is None or (ferritin.uln is None and ferritin.baseline is None)) and all(
                f is None for f in findings
            ):
                skipped[score] = (
                    "needs labs.ferritin with its uln or baseline, or an IEC-HS finding "
                    "(clinical.onset, clinical.ferritin_rapidly_rising ...)"
                )
                continue
        wanted.append(score)
    return wanted, skipped


def compute_risk(document: Any) -> RiskReport:
    """Validate a risk input document and compute the scores it asks for (or every possible one).

    Args:
        document: the parsed JSON object (see the module docstring).

    Returns:
        :class:`RiskReport`.

    Raises:
        InputError: the document or a field is invalid, a unit is unknown or cannot be converted
            (:class:`~actnav.errors.UnitError`), a value is implausible, or a requested score lacks
            an input; ``where`` is the input path.
        DataFileError: a packaged data file is invalid.

    Source:
        clinical-reference.md sections 3 and 4, through :mod:`actnav.toxicity.risk` and
        :mod:`actnav.toxicity.iec_hs`.
    """
    if not isinstance(document, dict):
        raise InputError('expected a JSON object: {"labs": {...}, "clinical": {...}}')
    data = validate_input(RiskInput, document)
    labs, clinical = data.labs, data.clinical
    if clinical.temp_c is not None and clinical.temp_f is not None:
        raise InputError("give temp_c or temp_f, not both", where="clinical.temp_f")
    wanted, skipped = _wanted(data)
    report: dict[str, Any] = {}
    notes: list[str] = []
    with _named(clinical):
        if "easix" in wanted:
            assert labs.ldh and labs.creatinine and labs.platelets
            report["easix"] = easix_score(
                ldh=_enzyme(labs.ldh, "ldh").value,
                creatinine=labs.creatinine.value,
                creatinine_unit=labs.creatinine.unit,
                platelets=labs.platelets.value,
                platelets_unit=labs.platelets.unit,
                ldh_unit=labs.ldh.unit,
            )
        if "m_easix" in wanted:
            assert labs.ldh and labs.crp and labs.platelets
            report["m_easix"] = m_easix_score(
                ldh=_enzyme(labs.ldh, "ldh").value,
                crp=labs.crp.value,
                crp_unit=labs.crp.unit,
                platelets=labs.platelets.value,
                platelets_unit=labs.platelets.unit,
                ldh_unit=labs.ldh.unit,
            )
        if "car_hematotox" in wanted:
            assert labs.platelets and labs.anc and labs.hemoglobin and labs.crp and labs.ferritin
            report["car_hematotox"] = car_hematotox(
                platelets=labs.platelets.value,
                platelets_unit=labs.platelets.unit,
                anc=labs.anc.value,
                anc_unit=labs.anc.unit,
                hemoglobin=labs.hemoglobin.value,
                hemoglobin_unit=labs.hemoglobin.unit,
                crp=labs.crp.value,
                crp_unit=labs.crp.unit,
                ferritin=labs.ferritin.value,
                ferritin_unit=labs.ferritin.unit,
            )
            if data.timing is None:
                notes.append(
                    "CAR-HEMATOTOX is defined on labs drawn before lymphodepletion (about day -5); "
                    "give 'timing' to record when these were drawn."
                )
        if "hscore" in wanted:
            report["hscore"] = _hscore(labs, clinical)
        if "iec_hs" in wanted:
            report["iec_hs"] = _iec_hs(labs, clinical)
    for score, why in skipped.items():
        notes.append(f"{_TITLES[score]} not computed: {why}.")
    unconfirmed = [_TITLES[name] for name in SCORE_NAMES if name in report and report[name].unconfirmed]
    return RiskReport(
        timing=data.timing, not_computed=dict(skipped), unconfirmed=unconfirmed, notes=notes, **report
    )


def _celsius(clinical: Clinical) -> float | None:
    if clinical.temp_c is not None:
        return clinical.temp_c
    return fahrenheit_to_celsius(clinical.temp_f) if clinical.temp_f is not None else None


def _hscore(labs: Labs, clinical: Clinical) -> HScoreResult:
    hb = (
        convert(labs.hemoglobin.value, labs.hemoglobin.unit, "g/dL", field="labs.hemoglobin.unit")
        if labs.hemoglobin
        else None
    )
    wbc = convert(labs.wbc.value, labs.wbc.unit, "10*9/L", field="labs.wbc.unit") if labs.wbc else None
    plt = (
        convert(labs.platelets.value, labs.platelets.unit, "10*9/L", field="labs.platelets.unit")
        if labs.platelets
        else None
    )
    ferritin = (
        convert(labs.ferritin.value, labs.ferritin.unit, "ng/mL", field="labs.ferritin.unit")
        if labs.ferritin
        else None
    )
    ast = _enzyme(labs.ast, "ast").value if labs.ast else None
    return hscore(
        immunosuppression=clinical.immunosuppression,
        temperature_c=_celsius(clinical),
        hepatomegaly=clinical.hepatomegaly,
        splenomegaly=clinical.splenomegaly,
        hemoglobin_g_dl=hb,
        wbc_10e9_l=wbc,
        platelets_10e9_l=plt,
        ferritin_ng_ml=ferritin,
        triglycerides=labs.triglycerides.value if labs.triglycerides else None,
        triglycerides_unit=labs.triglycerides.unit if labs.triglycerides else "mmol/L",
        fibrinogen=labs.fibrinogen.value if labs.fibrinogen else None,
        fibrinogen_unit=labs.fibrinogen.unit if labs.fibrinogen else "g/L",
        ast_u_l=ast,
        hemophagocytosis=clinical.hemophagocytosis,
    )


def _iec_hs(labs: Labs, clinical: Clinical) -> IecHsAssessment:
    ferritin = _lab_in(labs.ferritin, "ferritin", "ng/mL") if labs.ferritin else (None, None, None)
    alt = _enzyme(labs.alt, "alt") if labs.alt else None
    ast = _enzyme(labs.ast, "ast") if labs.ast else None
    ldh = _enzyme(labs.ldh, "ldh") if labs.ldh else None
    fibrinogen = (
        convert(labs.fibrinogen.value, labs.fibrinogen.unit, "mg/dL", field="labs.fibrinogen.unit")
        if labs.fibrinogen
        else None
    )
    triglycerides: float | None = None
    if labs.triglycerides is not None:
        unit = ucum(labs.triglycerides.unit, "labs.triglycerides.unit")
        if unit == "mg/dL":
            triglycerides = labs.triglycerides.value
        elif unit == "mmol/L":
            triglycerides = (
                labs.triglycerides.value * load_risk_scores().conversions.triglycerides_mg_dl_per_mmol_l
            )
        else:
            raise InputError(
                f"triglycerides must be in mmol/L or mg/dL, got {labs.triglycerides.unit!r}",
                where="labs.triglycerides.unit",
            )
    bilirubin = labs.bilirubin
    if bilirubin is not None:
        ucum(bilirubin.unit, "labs.bilirubin.unit")  # a known unit; value and ULN share it
    return assess_iec_hs(
        ferritin_ng_ml=ferritin[0],
        ferritin_uln_ng_ml=ferritin[1],
        ferritin_baseline_ng_ml=ferritin[2],
        ferritin_rapidly_rising=clinical.ferritin_rapidly_rising,
        onset=clinical.onset,
        cytopenia=clinical.cytopenia,
        alt_u_l=alt.value if alt else None,
        alt_uln_u_l=alt.uln if alt else None,
        ast_u_l=ast.value if ast else None,
        ast_uln_u_l=ast.uln if ast else None,
        ldh_u_l=ldh.value if ldh else None,
        ldh_uln_u_l=ldh.uln if ldh else None,
        fibrinogen_mg_dl=fibrinogen,
        coagulopathy=clinical.coagulopathy,
        bilirubin=bilirubin.value if bilirubin else None,
        bilirubin_uln=bilirubin.uln if bilirubin else None,
        hemophagocytosis=clinical.hemophagocytosis,
        renal_injury=clinical.renal_injury,
        triglycerides_mg_dl=triglycerides,
        splenomegaly=clinical.splenomegaly,
        severity=clinical.iec_hs_severity,
    )
