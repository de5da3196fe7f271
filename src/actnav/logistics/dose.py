"""The labelled dose for a patient and product, and checking a product's certificate against it.

:func:`labelled_dose` picks the product's dose row (``Product.dose``) for the indication and the
body weight, and turns it into a range of absolute cell counts:

* a per-kg row (``per_kg_min``/``per_kg_max``) is multiplied by the weight; when the row has a cap
  (``total_max``) the range is cut at it (axicabtagene ciloleucel 2 x 10^6/kg, at most 2 x 10^8:
  120 kg gives 2 x 10^8, not 2.4 x 10^8);
* a flat row (``total_min``/``total_max``) is the range whatever the weight;
* weight bands (``weight_kg_max_inclusive`` / ``weight_kg_min_exclusive``) choose the row:
  tisagenlecleucel B-ALL at 50 kg is per kg (0.2-5.0 x 10^6/kg), at 50.1 kg flat
  (0.1-2.5 x 10^8).

Arithmetic is exact (decimal): 0.2 x 10^6/kg x 50.1 kg is 10,020,000 cells, not a binary
approximation. :func:`check_certificate` compares the cell count on a manufactured product's
certificate with the range and flags an out-of-specification product with what to do.

Source: the product files' dose rows (label section 2.1, with their verification tags);
out-of-specification handling: ``data/logistics/vein-to-vein.yaml``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actnav.eligibility.engine import SourceInfo, source_info
from actnav.errors import InputError
from actnav.knowledge.models import DoseBand, Product
from actnav.logistics.data import load_vein_to_vein


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelledDose(_Out):
    """The labelled dose range of one product for one indication and body weight (cells, absolute)."""

    product_id: str
    brand: str
    indication_id: str
    weight_kg: float | None
    basis: Literal["per_kg", "flat"]
    cells: str = Field(description="What is counted, e.g. 'CAR-positive viable T cells'.")
    per_kg_min: float | None = None
    per_kg_max: float | None = None
    min_cells: float
    max_cells: float
    target: bool = Field(description="The label gives one target dose (minimum = maximum).")
    capped: bool = Field(description="The weight-based range was cut at the label's maximum.")
    cap_cells: float | None = None
    text: str = Field(description="The dose row's wording.")
    source: SourceInfo
    unconfirmed: bool
    notes: tuple[str, ...] = ()


class Certificate(BaseModel):
    """Values from a manufactured product's certificate (release for infusion / certificate of analysis).

    ``cells`` is the number of the cells the label counts (for a CAR-T: CAR-positive viable T cells),
    absolute (e.g. ``1.8e8``). ``meets_release_specifications`` is the manufacturer's statement, if
    the certificate gives one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    cells: float = Field(gt=0)
    lot: str | None = Field(default=None, max_length=100)
    meets_release_specifications: bool | None = None


class CertificateCheck(_Out):
    """The certificate compared with the labelled dose."""

    dose: LabelledDose
    cells: float
    status: Literal["within_label", "out_of_specification"]
    findings: tuple[str, ...]
    what_to_do: str | None = None
    sources: tuple[SourceInfo, ...]
    unconfirmed: bool


def cells_text(value: float | None) -> str:
    """A cell count the way labels write it: ``2.5 x 10^8`` (``?`` for None)."""
    if value is None:
        return "?"
    mantissa, exponent = f"{value:.4e}".split("e")
    digits = mantissa.rstrip("0").rstrip(".")
    return f"{digits} x 10^{int(exponent)}"


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _number(value: Decimal) -> float:
    return float(value)


def _in_band(band: DoseBand, weight: Decimal | None) -> bool:
    if band.weight_kg_min_exclusive is None and band.weight_kg_max_inclusive is None:
        return True
    if weight is None:
        raise InputError("the dose depends on body weight: give the weight in kg", where="weight_kg")
    if band.weight_kg_min_exclusive is not None and not weight > _dec(band.weight_kg_min_exclusive):
        return False
    return band.weight_kg_max_inclusive is None or weight <= _dec(band.weight_kg_max_inclusive)


def dose_indications(product: Product) -> tuple[str, ...]:
    """The indication ids the product's dose rows apply to, in file order."""
    seen: dict[str, None] = {}
    for band in product.dose:
        for ind in band.applies_to:
            seen.setdefault(ind, None)
    return tuple(seen)


def _indication(product: Product, indication_id: str | None) -> str:
    ids = dose_indications(product)
    if indication_id is None:
        if len(ids) == 1:
            return ids[0]
        raise InputError(
            f"{product.brand} has several dose rules: name the indication",
            where="indication",
            hint="one of " + ", ".join(ids),
        )
    if indication_id not in {ind.id for ind in product.indications}:
        known = ", ".join(ind.id for ind in product.indications)
        raise InputError(
            f"{product.brand} has no indication {indication_id!r}", where="indication", hint=known
        )
    if indication_id not in ids:
        raise InputError(f"no dose rule of {product.brand} applies to {indication_id}", where="indication")
    return indication_id


def labelled_dose(product_id: str, indication_id: str | None, weight_kg: float | None) -> LabelledDose:
    """The labelled dose range for a patient's weight.

    Args:
        product_id: product id, INN, brand or short name (``axicabtagene_ciloleucel``, ``Yescarta``,
            ``axi-cel``).
        indication_id: the indication id of the product file (``b-all-up-to-25``); may be omitted
            when the product's dose rows name one indication only.
        weight_kg: body weight in kg (needed for per-kg rows and weight bands; ignored by flat rows).

    Returns:
        :class:`LabelledDose`: minimum and maximum cells (absolute counts), per-kg figures, whether a
        cap cut the range, the row's wording and source.

    Raises:
        InputError: unknown product or indication, indication needed but missing, weight missing when
            the dose depends on it, or not a plausible weight (above 0, at most 400 kg).
        DataFileError: a product file is invalid, or no (or more than one) dose row fits.

    Source:
        Product files, ``dose`` rows (label section 2.1).
    """
    from actnav.toxicity.guidance import check_weight, resolve_product

    product = resolve_product(product_id, where="product")
    indication = _indication(product, indication_id)
    weight = _dec(check_weight(weight_kg, where="weight_kg")) if weight_kg is not None else None
    rows = [b for b in product.dose if indication in b.applies_to]
    fitting = [b for b in rows if _in_band(b, weight)]
    if len(fitting) != 1:
        from actnav.errors import DataFileError

        raise DataFileError(
            f"{len(fitting)} dose rows fit {indication} at {weight_kg} kg (expected exactly one)",
            where=f"products/{product.id}.yaml: dose",
        )
    band = fitting[0]
    info = source_info(band.source, product.references)
    assert info is not None
    notes: list[str] = []
    capped = False
    if band.per_kg_min is not None or band.per_kg_max is not None:
        if weight is None:
            raise InputError("a per-kg dose needs the body weight in kg", where="weight_kg")
        low = _dec(band.per_kg_min if band.per_kg_min is not None else band.per_kg_max or 0) * weight
        high = _dec(band.per_kg_max if band.per_kg_max is not None else band.per_kg_min or 0) * weight
        if band.total_max is not None:
            cap = _dec(band.total_max)
            if high > cap:
                capped = True
                high = cap
                notes.append(
                    f"the weight-based dose is capped at the label's maximum of {cells_text(band.total_max)} cells"
                )
            low = min(low, cap)
        basis: Literal["per_kg", "flat"] = "per_kg"
    else:
        if band.total_min is None and band.total_max is None:
            raise InputError(f"the dose row of {indication} has no numbers", where="dose")
        low = _dec(band.total_min if band.total_min is not None else band.total_max or 0)
        high = _dec(band.total_max if band.total_max is not None else band.total_min or 0)
        basis = "flat"
    target = band.per_kg_min == band.per_kg_max if basis == "per_kg" else band.total_min == band.total_max
    if not info.confirmed:
        notes.append(f"the dose row rests on a source tagged {info.verification}: confirm against the label")
    return LabelledDose(
        product_id=product.id,
        brand=product.brand,
        indication_id=indication,
        weight_kg=float(weight) if weight is not None else None,
        basis=basis,
        cells=band.cells,
        per_kg_min=band.per_kg_min,
        per_kg_max=band.per_kg_max,
        min_cells=_number(low),
        max_cells=_number(high),
        target=target,
        capped=capped,
        cap_cells=band.total_max if basis == "per_kg" else None,
        text=band.text,
        source=info,
        unconfirmed=not info.confirmed,
        notes=tuple(notes),
    )


def check_certificate(dose: LabelledDose, certificate: Certificate) -> CertificateCheck:
    """Compare a manufactured product's certificate with the labelled dose.

    The product is within the label when the certificate's cell count lies in
    ``[dose.min_cells, dose.max_cells]`` (inclusive, exact decimal comparison) and the certificate
    does not say the release specifications are unmet; otherwise it is out of specification and the
    result carries what to do.

    Returns:
        :class:`CertificateCheck` (status ``within_label`` or ``out_of_specification``, findings).

    Raises:
        DataFileError: the logistics data file is invalid.

    Source:
        Dose rows of the product files; out-of-specification handling in
        ``data/logistics/vein-to-vein.yaml`` (CIBMTR forms manual; label wording not seen).
    """
    cells = _dec(certificate.cells)
    findings: list[str] = []
    low, high = _dec(dose.min_cells), _dec(dose.max_cells)
    if low == high:
        wording = f"the labelled {'target ' if dose.target else ''}dose ({cells_text(dose.min_cells)})"
    else:
        wording = f"the labelled range ({cells_text(dose.min_cells)} to {cells_text(dose.max_cells)})"
    given = cells_text(certificate.cells)
    if cells < low:
        findings.append(f"{given} cells is below {wording}")
    elif cells > high:
        findings.append(f"{given} cells is above {wording}")
    if certificate.meets_release_specifications is False:
        findings.append("the certificate states that the release specifications are not met")
    data = load_vein_to_vein()
    sources = [dose.source]
    what_to_do = None
    if findings:
        what_to_do = data.out_of_specification.text
        sources.append(data.cite(data.out_of_specification.source))
    else:
        findings.append(f"{given} cells is within {wording}")
    return CertificateCheck(
        dose=dose,
        cells=certificate.cells,
        status="out_of_specification" if what_to_do else "within_label",
        findings=tuple(findings),
        what_to_do=what_to_do,
        sources=tuple(sources),
        unconfirmed=not all(s.confirmed for s in sources),
    )
