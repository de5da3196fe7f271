"""IEC-HS (immune effector cell-associated HLH-like syndrome): a flag with its evidence.

The ASTCT consensus (Hines MR et al., Transplant Cell Ther 2023, PMID 36906275) named the
syndrome; only its abstract has been seen. The criteria and grades in
``actnav/data/toxicity/iec-hs.yaml`` are recollection [R] and the flag rule is configuration [U],
so :func:`assess_iec_hs` never grades on its own: it lists each finding as met, not met or unknown,
raises a flag when the configured rule is met ("features suggestive of IEC-HS: assess"), and gives
a grade only from a clinician-selected severity. Every result is unconfirmed.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actnav.eligibility.engine import SourceInfo
from actnav.errors import InputError
from actnav.knowledge.models import SourceRef
from actnav.toxicity.risk import ToxFile, ToxModel, check_number, cite, dedupe_sources, load_data_file

OnsetPattern = Literal[
    "crs_active", "crs_resolving", "after_crs_resolved", "worsening_after_il6_blockade", "no_crs"
]


class Concept(ToxModel):
    text: str
    source: SourceRef


class FerritinSpec(ToxModel):
    multiple_of_uln_gt: float
    multiple_of_baseline_gt: float
    source: SourceRef


class TimingSpec(ToxModel):
    suggestive: tuple[OnsetPattern, ...]
    source: SourceRef


class Manifestation(ToxModel):
    id: Literal[
        "cytopenia",
        "transaminases",
        "ldh",
        "hypofibrinogenemia",
        "coagulopathy",
        "hyperbilirubinemia",
        "hemophagocytosis",
        "renal_injury",
        "hypertriglyceridemia",
        "splenomegaly",
    ]
    text: str
    kind: Literal["clinician", "multiple_of_uln", "below", "above"]
    gt: float | None = None
    lt: float | None = None
    unit: str | None = None
    source: SourceRef


class FlagRule(ToxModel):
    require_ferritin: bool
    min_manifestations: int
    source: SourceRef


class GradeOption(ToxModel):
    grade: int
    id: str
    text: str


class NotIncluded(ToxModel):
    text: str
    source: SourceRef


class IecHsFile(ToxFile):
    concept: Concept
    ferritin: FerritinSpec
    timing: TimingSpec
    manifestations: tuple[Manifestation, ...]
    flag_rule: FlagRule
    grades: tuple[GradeOption, ...]
    grades_source: SourceRef
    not_included: NotIncluded


@cache
def load_iec_hs() -> IecHsFile:
    """``iec-hs.yaml``, validated once per process.

    Raises:
        DataFileError: the file is invalid.
    """
    return load_data_file(IecHsFile, "iec-hs.yaml")


class Finding(BaseModel):
    """One criterion of the evidence list: met, not met, or unknown (input missing)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    text: str
    met: bool | None
    detail: str
    source: SourceInfo


class IecHsAssessment(BaseModel):
    """The evidence for IEC-HS at one time point, and the flag the configured rule gives."""

    model_config = ConfigDict(extra="forbid")

    suggestive: bool | None = Field(
        description="True: features suggestive of IEC-HS (assess); False: rule not met; "
        "null: cannot tell (ferritin criterion unknown)."
    )
    ferritin: Finding
    timing: Finding
    manifestations: list[Finding]
    manifestations_met: int
    grade: int | None = Field(description="Only from a clinician-selected severity; never computed.")
    grade_text: str | None
    needs: list[str]
    notes: list[str]
    sources: list[SourceInfo]
    unconfirmed: bool = True


def assess_iec_hs(
    *,
    ferritin_ng_ml: float | None = None,
    ferritin_uln_ng_ml: float | None = None,
    ferritin_baseline_ng_ml: float | None = None,
    ferritin_rapidly_rising: bool | None = None,
    onset: OnsetPattern | None = None,
    cytopenia: bool | None = None,
    alt_u_l: float | None = None,
    alt_uln_u_l: float | None = None,
    ast_u_l: float | None = None,
    ast_uln_u_l: float | None = None,
    ldh_u_l: float | None = None,
    ldh_uln_u_l: float | None = None,
    fibrinogen_mg_dl: float | None = None,
    coagulopathy: bool | None = None,
    bilirubin: float | None = None,
    bilirubin_uln: float | None = None,
    hemophagocytosis: bool | None = None,
    renal_injury: bool | None = None,
    triglycerides_mg_dl: float | None = None,
    splenomegaly: bool | None = None,
    severity: str | None = None,
) -> IecHsAssessment:
    """Collect the evidence for IEC-HS and apply the configured flag rule.

    Every input is optional; a finding whose inputs are missing is "unknown" and listed in
    ``needs``. Booleans are clinician assessments.

    Args:
        ferritin_ng_ml: current ferritin, ng/mL (= ug/L).
        ferritin_uln_ng_ml: the lab's upper limit of normal for ferritin, ng/mL.
        ferritin_baseline_ng_ml: ferritin at infusion, ng/mL.
        ferritin_rapidly_rising: clinician judges ferritin to be rising rapidly.
        onset: relation to CRS: ``crs_active``, ``crs_resolving``, ``after_crs_resolved``,
            ``worsening_after_il6_blockade`` or ``no_crs``.
        cytopenia: new or worsening cytopenias.
        alt_u_l: ALT, U/L; ``alt_uln_u_l`` its ULN.
        alt_uln_u_l: ULN of ALT, U/L.
        ast_u_l: AST, U/L; ``ast_uln_u_l`` its ULN.
        ast_uln_u_l: ULN of AST, U/L.
        ldh_u_l: LDH, U/L; ``ldh_uln_u_l`` its ULN.
        ldh_uln_u_l: ULN of LDH, U/L.
        fibrinogen_mg_dl: fibrinogen, mg/dL (g/L x 100).
        coagulopathy: clinically significant coagulopathy.
        bilirubin: total bilirubin (any unit, same as ``bilirubin_uln``).
        bilirubin_uln: ULN of total bilirubin, same unit.
        hemophagocytosis: haemophagocytosis in bone marrow or tissue.
        renal_injury: new renal injury.
        triglycerides_mg_dl: triglycerides, mg/dL.
        splenomegaly: splenomegaly.
        severity: clinician-selected severity id (``mild_no_intervention``, ``needs_intervention``,
            ``severe``, ``life_threatening``, ``death``) to report a grade.

    Returns:
        :class:`IecHsAssessment` (always ``unconfirmed``).

    Raises:
        InputError: a negative or implausible number, a ULN of 0, an unknown ``onset`` or
            ``severity``; the error names the field.

    Source:
        Hines MR et al., Transplant Cell Ther 2023 (PMID 36906275), abstract [V]; criteria and
        grades as recalled in clinical-reference.md section 3 [R].
    """
    data = load_iec_hs()
    used: list[SourceRef] = [data.concept.source, data.flag_rule.source]
    needs: list[str] = []
    notes = [data.concept.text, data.not_included.text]

    ferritin = _ferritin(
        data, ferritin_ng_ml, ferritin_uln_ng_ml, ferritin_baseline_ng_ml, ferritin_rapidly_rising, needs
    )
    used.append(data.ferritin.source)

    if onset is not None and onset not in (
        "crs_active",
        "crs_resolving",
        "after_crs_resolved",
        "worsening_after_il6_blockade",
        "no_crs",
    ):
        raise InputError(f"unknown onset pattern {onset!r}", where="onset")
    timing = Finding(
        id="timing",
        text="Onset as CRS resolves or after it, or worsening after initial improvement with IL-6 blockade",
        met=None if onset is None else onset in data.timing.suggestive,
        detail=f"onset: {onset}" if onset else "onset not given",
        source=cite(data, data.timing.source),
    )
    used.append(data.timing.source)
    if onset is None:
        needs.append("onset relative to CRS")
    elif onset == "crs_active":
        notes.append(
            "CRS is active: IEC-HS is defined as not explained by CRS, so the two cannot be "
            "told apart yet; reassess as CRS resolves."
        )

    clinician = {
        "cytopenia": cytopenia,
        "coagulopathy": coagulopathy,
        "hemophagocytosis": hemophagocytosis,
        "renal_injury": renal_injury,
        "splenomegaly": splenomegaly,
    }
    manifestations: list[Finding] = []
    for spec in data.manifestations:
        used.append(spec.source)
        if spec.kind == "clinician":
            flag = clinician[spec.id]
            if flag is not None and not isinstance(flag, bool):
                raise InputError(f"must be true or false, got {flag!r}", where=spec.id)
            met, detail = flag, "clinician assessment" if flag is not None else "not assessed"
        elif spec.id == "transaminases":
            met, detail = _transaminases(spec, alt_u_l, alt_uln_u_l, ast_u_l, ast_uln_u_l)
        elif spec.id == "ldh":
            met, detail = _over_uln(spec, ldh_u_l, ldh_uln_u_l, "ldh_u_l", "ldh_uln_u_l", "LDH")
        elif spec.id == "hyperbilirubinemia":
            met, detail = _over_uln(spec, bilirubin, bilirubin_uln, "bilirubin", "bilirubin_uln", "bilirubin")
        elif spec.id == "hypofibrinogenemia":
            met, detail = _vs_limit(spec, fibrinogen_mg_dl, "fibrinogen_mg_dl", 2_000.0)
        else:  # hypertriglyceridemia
            met, detail = _vs_limit(spec, triglycerides_mg_dl, "triglycerides_mg_dl", 20_000.0)
        if met is None:
            needs.append(spec.text)
        manifestations.append(
            Finding(id=spec.id, text=spec.text, met=met, detail=detail, source=cite(data, spec.source))
        )

    met_count = sum(1 for f in manifestations if f.met is True)
    unknown = sum(1 for f in manifestations if f.met is None)
    rule = data.flag_rule
    suggestive: bool | None
    if rule.require_ferritin and ferritin.met is False:
        suggestive = False
    elif met_count >= rule.min_manifestations and (ferritin.met is True or not rule.require_ferritin):
        suggestive = True
    elif ferritin.met is None or met_count + unknown >= rule.min_manifestations:
        suggestive = None
    else:
        suggestive = False
    if suggestive:
        notes.append(
            "Features suggestive of IEC-HS: assess clinically (infection, relapse and other causes "
            "of hyperinflammation first). This is a flag, not a diagnosis or a grade."
        )

    grade: int | None = None
    grade_text: str | None = None
    if severity is not None:
        option = next((g for g in data.grades if g.id == severity), None)
        if option is None:
            raise InputError(
                f"unknown severity {severity!r}",
                where="severity",
                hint="one of " + ", ".join(g.id for g in data.grades),
            )
        grade, grade_text = option.grade, option.text
        used.append(data.grades_source)
    else:
        notes.append("No grade: IEC-HS grading needs the clinician's severity assessment.")
    return IecHsAssessment(
        suggestive=suggestive,
        ferritin=ferritin,
        timing=timing,
        manifestations=manifestations,
        manifestations_met=met_count,
        grade=grade,
        grade_text=grade_text,
        needs=needs,
        notes=notes,
        sources=dedupe_sources([cite(data, s) for s in used]),
        unconfirmed=True,
    )


def _ferritin(
    data: IecHsFile,
    value: float | None,
    uln: float | None,
    baseline: float | None,
    rising: bool | None,
    needs: list[str],
) -> Finding:
    spec = data.ferritin
    parts: list[str] = []
    results: list[bool] = []
    if value is not None:
        x = check_number(value, "ferritin_ng_ml", high=1_000_000.0, unit="ng/mL")
        if uln is not None:
            limit = check_number(uln, "ferritin_uln_ng_ml", allow_low=False, high=100_000.0, unit="ng/mL")
            multiple = x / limit
            results.append(multiple > spec.multiple_of_uln_gt)
            parts.append(f"{multiple:.3g} x ULN (> {spec.multiple_of_uln_gt:g} needed)")
        if baseline is not None:
            base = check_number(
                baseline, "ferritin_baseline_ng_ml", allow_low=False, high=1_000_000.0, unit="ng/mL"
            )
            multiple = x / base
            results.append(multiple > spec.multiple_of_baseline_gt)
            parts.append(f"{multiple:.3g} x baseline (> {spec.multiple_of_baseline_gt:g} needed)")
        if uln is None and baseline is None:
            parts.append(f"{x:g} ng/mL, but neither ULN nor baseline given")
    if rising is not None:
        if not isinstance(rising, bool):
            raise InputError(f"must be true or false, got {rising!r}", where="ferritin_rapidly_rising")
        results.append(rising)
        parts.append("rapidly rising" if rising else "not rapidly rising")
    numeric_known = value is not None and (uln is not None or baseline is not None)
    met: bool | None
    if any(results):
        met = True
    elif numeric_known and rising is False:
        met = False
    else:
        met = None
        if not numeric_known:
            needs.append("ferritin with its ULN or its baseline at infusion")
        if rising is None:
            needs.append("whether ferritin is rising rapidly")
    return Finding(
        id="ferritin",
        text="Ferritin > 2 x ULN or > 2 x baseline, and/or rapidly rising",
        met=met,
        detail="; ".join(parts) or "not given",
        source=cite(data, spec.source),
    )


def _over_uln(
    spec: Manifestation, value: float | None, uln: float | None, field: str, uln_field: str, what: str
) -> tuple[bool | None, str]:
    if value is None or uln is None:
        return None, f"{what} or its ULN not given"
    x = check_number(value, field, high=100_000.0)
    limit = check_number(uln, uln_field, allow_low=False, high=100_000.0)
    assert spec.gt is not None
    multiple = x / limit
    return multiple > spec.gt, f"{what} {multiple:.3g} x ULN (> {spec.gt:g} needed)"


def _transaminases(
    spec: Manifestation, alt: float | None, alt_uln: float | None, ast: float | None, ast_uln: float | None
) -> tuple[bool | None, str]:
    results = [
        _over_uln(spec, alt, alt_uln, "alt_u_l", "alt_uln_u_l", "ALT"),
        _over_uln(spec, ast, ast_uln, "ast_u_l", "ast_uln_u_l", "AST"),
    ]
    detail = "; ".join(d for _, d in results)
    if any(m is True for m, _ in results):
        return True, detail
    if all(m is False for m, _ in results):
        return False, detail
    return None, detail


def _vs_limit(spec: Manifestation, value: float | None, field: str, high: float) -> tuple[bool | None, str]:
    if value is None:
        return None, "not given"
    x = check_number(value, field, high=high, unit=spec.unit or "")
    if spec.kind == "below":
        assert spec.lt is not None
        return x < spec.lt, f"{x:g} {spec.unit} (< {spec.lt:g} needed)"
    assert spec.gt is not None
    return x > spec.gt, f"{x:g} {spec.unit} (> {spec.gt:g} needed)"
