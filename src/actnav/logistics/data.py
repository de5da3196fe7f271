"""The logistics data file (``data/logistics/vein-to-vein.yaml``): models and loader.

The file holds what is not a label fact: the manufacturing turnaround per product (sourced where a
figure was found, otherwise a programme default), shipment days, the follow-up visit days, the
notification horizon, and the texts shown for an out-of-specification product, the bedside check
and the donation identification number. Label facts (dose bands, lymphodepletion regimen, its
length and the window before infusion) stay in the product files.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actnav.eligibility.engine import SourceInfo, source_info
from actnav.errors import DataFileError
from actnav.knowledge.loader import load_data, load_knowledge
from actnav.knowledge.models import Reference, SourceRef

DATA_FILE = "logistics/vein-to-vein.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duration(_Strict):
    """A planning duration in whole days, with what it measures and where it comes from."""

    days: int = Field(ge=0)
    basis: str
    programme_default: bool = Field(
        default=False, description="A value a programme sets for itself, not a published fact."
    )
    source: SourceRef


class Defaults(_Strict):
    manufacturing: Duration
    shipment_to_manufacturing: Duration
    shipment_back: Duration
    lymphodepletion_start_after_receipt: Duration
    follow_up_days_after_infusion: tuple[int, ...]
    follow_up_source: SourceRef
    notify_horizon_days: int = Field(ge=0)


class ProductLogistics(_Strict):
    product: str
    manufacturing: Duration


class SourcedText(_Strict):
    text: str
    source: SourceRef


class MultiSourcedText(_Strict):
    text: str
    sources: tuple[SourceRef, ...]


class VeinToVeinFile(_Strict):
    """Schema of ``data/logistics/vein-to-vein.yaml``; every ``source.ref`` must be declared."""

    schema_version: Literal[1] = 1
    id: str
    version: str
    title: str
    references: dict[str, Reference]
    defaults: Defaults
    products: tuple[ProductLogistics, ...]
    out_of_specification: SourcedText
    bedside_check: MultiSourcedText
    lymphodepletion_before_receipt: SourcedText
    din: MultiSourcedText
    remarks: str | None = None
    history: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _sources_declared(self) -> VeinToVeinFile:
        for where, source in self.sources():
            if source.ref not in self.references:
                raise ValueError(f"{where}: source.ref {source.ref!r} is not declared under references")
        return self

    def sources(self) -> Iterator[tuple[str, SourceRef]]:
        """Every source reference in the file, with where it is."""
        d = self.defaults
        for name in ("manufacturing", "shipment_to_manufacturing", "shipment_back"):
            yield f"defaults.{name}", getattr(d, name).source
        yield "defaults.lymphodepletion_start_after_receipt", d.lymphodepletion_start_after_receipt.source
        yield "defaults.follow_up_source", d.follow_up_source
        for i, product in enumerate(self.products):
            yield f"products[{i}].manufacturing", product.manufacturing.source
        yield "out_of_specification", self.out_of_specification.source
        yield "lymphodepletion_before_receipt", self.lymphodepletion_before_receipt.source
        for i, src in enumerate(self.bedside_check.sources):
            yield f"bedside_check.sources[{i}]", src
        for i, src in enumerate(self.din.sources):
            yield f"din.sources[{i}]", src

    def cite(self, source: SourceRef) -> SourceInfo:
        """A source of this file as shown in results."""
        info = source_info(source, self.references)
        assert info is not None  # a SourceRef always gives a SourceInfo
        return info

    def manufacturing(self, product_id: str) -> Duration:
        """The manufacturing turnaround of a product (the programme default when none is listed)."""
        for entry in self.products:
            if entry.product == product_id:
                return entry.manufacturing
        return self.defaults.manufacturing


@cache
def load_vein_to_vein() -> VeinToVeinFile:
    """Read and validate ``data/logistics/vein-to-vein.yaml`` (once per process).

    Raises:
        DataFileError: the file is invalid, or names a product that has no product file.
    """
    data = load_data(VeinToVeinFile, DATA_FILE)
    known = {p.id for p in load_knowledge().products}
    for i, entry in enumerate(data.products):
        if entry.product not in known:
            raise DataFileError(f"unknown product {entry.product!r}", where=f"{DATA_FILE}: products[{i}]")
    return data
