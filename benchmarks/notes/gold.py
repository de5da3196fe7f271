"""The hand annotations of ``gold.yaml``: one :class:`GoldTopic` per TREC/SIGIR patient description.

What each field means, and what counts as a fact, is in ``annotation-guide.md`` beside this file.
Loading checks what a reader could get wrong by hand: every annotation text is words of the topic
text, every ``must_not`` text occurs exactly once (so its place in the text is known), ids are unique,
and a lab of an actnav analyte (labs.yaml) written with a unit carries its value in the canonical unit.
Whether codes and keys exist in ICD-10-CM and the actnav terminology is checked by
tests/unit/benchmarks/test_notes_gold.py (it needs simple_icd_10_cm and the terminology tables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

GOLD_FILE = Path(__file__).with_name("gold.yaml")
#: The held-out topics (same schema; selection.heldout_topics), never used to tune the extractor.
HELDOUT_FILE = Path(__file__).with_name("heldout.yaml")
#: The test topics (same schema; selection.test_topics), a second held-out set for the final figures.
TESTSET_FILE = Path(__file__).with_name("testset.yaml")
OTHER = "other:"

TopicSet = Literal["trec_2021", "trec_2022", "sigir"]
Sex = Literal["female", "male"]
TransplantType = Literal["autologous", "allogeneic", "unknown"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GoldDiagnosis(_Strict):
    """A condition the patient has or had: ICD-10-CM code as specific as the text allows.

    ``alternatives``: other codes a careful coder could defend for the same words (scoring accepts
    their 3-character categories too). ``concept``: the actnav concept of diagnoses.yaml, if any.
    """

    text: str = Field(min_length=1)
    icd10cm: str = Field(pattern=r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")
    alternatives: list[str] = []
    concept: str | None = None


class GoldLab(_Strict):
    """A measured value: analyte key of labs.yaml (or ``other:<name>``), value and unit as written.

    ``unit`` is None when the note gives no unit. ``canonical_value``/``canonical_unit``: the value in
    the analyte's canonical UCUM unit (labs.yaml); required for a labs.yaml analyte written with a
    unit, absent otherwise. ``note``: why a reading is not the literal one.
    """

    analyte: str = Field(pattern=r"^(other:)?[a-z0-9_]+$")
    value: float
    unit: str | None
    text: str = Field(min_length=1)
    canonical_value: float | None = None
    canonical_unit: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _canonical(self) -> GoldLab:
        other = self.analyte.startswith(OTHER)
        has_canonical = self.canonical_value is not None or self.canonical_unit is not None
        if other and has_canonical:
            raise ValueError(f"{self.analyte}: an other: analyte has no canonical unit")
        if (
            not other
            and self.unit is not None
            and (self.canonical_value is None or self.canonical_unit is None)
        ):
            raise ValueError(f"{self.analyte}: give canonical_value and canonical_unit")
        if self.unit is None and has_canonical:
            raise ValueError(f"{self.analyte}: no unit written, so no canonical value")
        return self

    @property
    def target(self) -> float:
        """The number a prediction is compared with: canonical when known, else as written."""
        return self.canonical_value if self.canonical_value is not None else self.value


class GoldTherapy(_Strict):
    """A drug the patient received: agent name of drugs.yaml (or ``other:<inn>``); regimens expanded."""

    agent: str = Field(pattern=r"^(other:)?[a-z0-9][a-z0-9 _\-]*$")
    anticancer: bool
    text: str = Field(min_length=1)


class GoldTransplant(_Strict):
    """A haematopoietic stem cell transplant the patient had."""

    type: TransplantType
    text: str = Field(min_length=1)


class MustNot(_Strict):
    """Words that must never give a patient fact (negated, family, hypothetical, uncertain)."""

    text: str = Field(min_length=1)
    why: str = Field(min_length=1)


class GoldTopic(_Strict):
    """One topic and its annotations. ``age`` in years; None when the text gives none.

    ``chosen_as``: which step of the selection rule (selection.py) chose the topic ("last" for the
    test topics of ``selection.test_topics``).
    """

    id: str = Field(pattern=r"^(trec-202[12]|sigir-201[45])[0-9]+$")
    set: TopicSet
    chosen_as: Literal["judged", "oncology", "first", "last"]
    text: str
    source: str
    age: float | None
    sex: Sex | None
    diagnoses: list[GoldDiagnosis]
    labs: list[GoldLab]
    therapies: list[GoldTherapy]
    transplants: list[GoldTransplant]
    must_not: list[MustNot]

    @model_validator(mode="after")
    def _texts_in_topic(self) -> GoldTopic:
        items: list[GoldDiagnosis | GoldLab | GoldTherapy | GoldTransplant | MustNot] = [
            *self.diagnoses,
            *self.labs,
            *self.therapies,
            *self.transplants,
            *self.must_not,
        ]
        for item in items:
            if item.text not in self.text:
                raise ValueError(f"{self.id}: {item.text!r} is not in the topic text")
        for m in self.must_not:
            if self.text.count(m.text) != 1:
                raise ValueError(f"{self.id}: must_not {m.text!r} must occur exactly once")
        agents = [t.agent for t in self.therapies]
        if len(agents) != len(set(agents)):
            raise ValueError(f"{self.id}: an agent is listed twice")
        return self

    def must_not_spans(self) -> list[tuple[int, int, MustNot]]:
        """``(start, end, mention)`` of every must_not mention in the topic text."""
        out = []
        for m in self.must_not:
            start = self.text.index(m.text)
            out.append((start, start + len(m.text), m))
        return out


class GoldFile(_Strict):
    """``gold.yaml``: provenance, the guide's version and the topics."""

    version: str
    source: str
    licence: str
    guide: str
    selection: str
    topics: list[GoldTopic]

    @model_validator(mode="after")
    def _unique_ids(self) -> GoldFile:
        ids = [t.id for t in self.topics]
        if len(ids) != len(set(ids)):
            raise ValueError("topic ids are not unique")
        return self


def load_gold(path: Path = GOLD_FILE) -> GoldFile:
    """Read and validate ``gold.yaml`` (pydantic ValidationError when a field is wrong)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return GoldFile.model_validate(data)
