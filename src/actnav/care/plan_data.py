"""Schemas and loaders of the patient-plan data files (``actnav/data/care``).

* ``care/plan-content.yaml`` (:class:`PlanContent`): every plain-language text of the patient's
  plan, each block citing the public pages it rests on (``sources``), the word list (glossary),
  the plain explanation of every work-up step and item of ``workup.yaml``.
* ``care/support-directory.yaml`` (:class:`SupportDirectory`): the organisations a patient or
  caregiver can turn to, each with its address, services, audience, country, last-checked date
  and the page it was checked against.
* A programme's own local services (:class:`LocalDirectory`): a YAML file outside the package
  with the same organisation entries, read by :func:`load_local_directory`.

Unknown keys are rejected; texts may use only the ``{placeholders}`` their field allows, and every
source a block cites must be declared. Cross-file check: the plan content explains every step and
item of ``workup.yaml``.
"""

from __future__ import annotations

import datetime as dt
import string
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actnav.errors import DataFileError, InputError
from actnav.knowledge.loader import load_data, load_workup, parse_file, read_yaml

__all__ = [
    "Modality",
    "Organisation",
    "PlanContent",
    "SupportDirectory",
    "load_local_directory",
    "load_plan_content",
    "load_support_directory",
]

Modality = Literal["CAR-T", "TIL", "TCR-T"]
MODALITIES: tuple[Modality, ...] = ("CAR-T", "TIL", "TCR-T")

PLAN_CONTENT_FILE = "care/plan-content.yaml"
DIRECTORY_FILE = "care/support-directory.yaml"


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- plan-content.yaml -------------------------------------------------------------------------


class SourceEntry(_Data):
    """A public page a text rests on, and what was seen there (``seen``) on ``checked``."""

    title: str
    publisher: str
    url: str
    seen: str
    checked: dt.date
    product: str | None = Field(
        default=None,
        description="Product id when the page is about one product: cited only when the plan considers it.",
    )


class GlossaryEntry(_Data):
    """An abbreviation the plan may use: ``short`` is the expansion shown in brackets at its first
    use, ``meaning`` the plain explanation of the word list. ``prefix``: the term starts a longer
    code (``NCT`` in ``NCT01234567``)."""

    term: str = Field(pattern=r"^[A-Z][A-Z0-9]*[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*$")
    short: str
    meaning: str
    prefix: bool = False


class Sourced(_Data):
    """A block of text that cites ``sources`` (keys of :attr:`PlanContent.sources`)."""

    sources: tuple[str, ...] = Field(min_length=1)


class TextBlock(Sourced):
    title: str
    paragraphs: tuple[str, ...] = ()
    bullets: tuple[str, ...] = ()


class NotMetText(Sourced):
    """What would have to change for an approved product for the patient's cancer: ``intro`` then
    the plain words of each label rule not met (criterion id -> text). A product is described only
    when every rule it fails has a text here (so products for other cancers are never named)."""

    intro: str
    rules: dict[str, str]


class ConsideredText(Sourced):
    title: str
    eligible: str
    needs_information: str
    none: tuple[str, ...] = Field(min_length=2, description="'None fits' text, then the next steps.")
    not_met: NotMetText
    general: TextBlock = Field(description="Cell therapy in general, shown when no product is considered.")


class TherapyStepText(_Data):
    id: str
    title: str
    text: str


class TherapyText(Sourced):
    """How one modality works: collection, modification or selection, expansion, infusion."""

    name: str
    short_name: str
    summary: str
    steps: tuple[TherapyStepText, ...]


class WorkupText(Sourced):
    title: str
    intro: str
    none: str
    helps_decide: str
    fitness_check: str
    trial_check: str
    steps: dict[str, str] = Field(description="Work-up step id (workup.yaml) -> plain title.")
    items: dict[str, str] = Field(description="Work-up item id (workup.yaml) -> plain explanation.")


class UndecidedText(Sourced):
    title: str
    needs_information: str
    unconfirmed: str
    fitness: str
    always: str


class JourneyStepText(_Data):
    id: str
    title: str
    text: str
    by_modality: dict[Modality, str] = Field(default_factory=dict)


class JourneyText(Sourced):
    title: str
    intro: str
    steps: tuple[JourneyStepText, ...]
    by_modality_sources: dict[Modality, tuple[str, ...]] = Field(
        default_factory=dict, description="Sources of the by_modality texts (cited for that modality)."
    )


class SideEffectText(Sourced):
    id: str
    title: str
    modalities: tuple[Modality, ...] = Field(min_length=1)
    what: str
    signs: tuple[str, ...]


class LabelWarningText(_Data):
    """Plain words for a boxed warning of a label: the first entry whose ``match`` words (lower
    case) occur in the warning's text is used."""

    match: tuple[str, ...] = Field(min_length=1)
    text: str


class SideEffectsText(_Data):
    title: str
    intro: str
    none_intro: str
    warnings_intro: str
    items: tuple[SideEffectText, ...]
    label_warnings: tuple[LabelWarningText, ...]
    label_warning_other: str


class WhenToCallText(Sourced):
    title: str
    paragraphs: tuple[str, ...]
    urgent_signs: tuple[str, ...]
    fill_in: tuple[str, ...]


class ProductAdvice(Sourced):
    text: str


class StayNearText(Sourced):
    title: str
    why: str
    stay: str
    drive: str
    no_period: str
    secondary: str
    plan_ahead: str
    product_advice: dict[str, ProductAdvice] = Field(
        description="Product id -> advice beyond the label data."
    )


class QuestionsText(Sourced):
    title: str
    intro: str
    items: tuple[str, ...]


class TrialsText(Sourced):
    title: str
    paragraphs: tuple[str, ...]
    found: str
    none_found: str
    study: str
    statuses: dict[str, str] = Field(
        description="ClinicalTrials.gov status -> plain words; others not shown."
    )
    other_therapy: str


class SupportText(Sourced):
    title: str
    emotional: tuple[str, ...]
    financial: tuple[str, ...]
    directory_intro: str
    local_label: str
    checked: str


class HolisticBlockText(Sourced):
    id: str
    title: str
    paragraphs: tuple[str, ...]
    bullets: tuple[str, ...] = ()


class HolisticText(_Data):
    title: str
    intro: str
    blocks: tuple[HolisticBlockText, ...]


class SelfAdvocacyText(Sourced):
    title: str
    intro: str
    bullets: tuple[str, ...]


class WordsText(Sourced):
    title: str


# Placeholders each text may use (path in the file -> allowed names); other texts take none.
_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "intro": frozenset({"date"}),
    "considered.eligible": frozenset({"therapy", "kind", "disease"}),
    "considered.needs_information": frozenset({"therapy", "kind", "disease"}),
    "considered.not_met.intro": frozenset({"therapy", "disease"}),
    "workup.helps_decide": frozenset({"therapy"}),
    "workup.fitness_check": frozenset({"therapy"}),
    "undecided.needs_information": frozenset({"therapy"}),
    "undecided.unconfirmed": frozenset({"therapy"}),
    "undecided.fitness": frozenset({"therapy"}),
    "side_effects.warnings_intro": frozenset({"therapy"}),
    "stay_near.stay": frozenset({"therapy", "weeks"}),
    "stay_near.drive": frozenset({"weeks"}),
    "stay_near.no_period": frozenset({"therapy"}),
    "trials.study": frozenset({"nct", "therapy", "status"}),
    "support.checked": frozenset({"date"}),
}


class PlanContent(_Data):
    """Every text of the patient's plan (``care/plan-content.yaml``)."""

    schema_version: Literal[1] = 1
    version: str
    sources: dict[str, SourceEntry]
    glossary: tuple[GlossaryEntry, ...]
    title: str = Field(description="The plan's heading.")
    diseases: dict[str, str] = Field(description="actnav disease concept id -> plain name.")
    intro: str
    about: str = Field(description="Who made the plan and what a label is (explained once, at the top).")
    considered: ConsideredText
    therapies: dict[Modality, TherapyText]
    evaluation: TextBlock
    workup: WorkupText
    undecided: UndecidedText
    journey: JourneyText
    side_effects: SideEffectsText
    when_to_call: WhenToCallText
    stay_near: StayNearText
    questions: QuestionsText
    trials: TrialsText
    support: SupportText
    holistic: HolisticText
    self_advocacy: SelfAdvocacyText
    words: WordsText
    disclaimer: str

    @model_validator(mode="after")
    def _consistent(self) -> PlanContent:
        missing = [m for m in MODALITIES if m not in self.therapies]
        if missing:
            raise ValueError(f"therapies: no text for {', '.join(missing)}")
        terms = [g.term for g in self.glossary]
        if len(terms) != len(set(terms)):
            raise ValueError("glossary: a term is listed twice")
        cited_lists = _cited_sources(self.model_dump())
        cited_lists += [
            (f"journey.by_modality_sources.{m}", list(refs))
            for m, refs in self.journey.by_modality_sources.items()
        ]
        for path, cited in cited_lists:
            unknown = [ref for ref in cited if ref not in self.sources]
            if unknown:
                raise ValueError(f"{path}: unknown source {', '.join(unknown)}")
        for path, text in _texts(self.model_dump(exclude={"sources"})):
            names = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
            allowed = _PLACEHOLDERS.get(path, frozenset())
            if names - allowed:
                raise ValueError(f"{path}: placeholder {sorted(names - allowed)} not allowed here")
        return self

    def source(self, ref: str) -> SourceEntry:
        return self.sources[ref]


def _texts(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string under ``node`` with its dotted path (list indexes left out of the path)."""
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, dict):
        return [hit for key, value in node.items() for hit in _texts(value, f"{path}.{key}" if path else key)]
    if isinstance(node, list | tuple):
        return [hit for value in node for hit in _texts(value, path)]
    return []


def _cited_sources(node: Any, path: str = "") -> list[tuple[str, list[str]]]:
    """Every ``sources`` list under ``node`` (the file's own ``sources`` mapping is not a list)."""
    found: list[tuple[str, list[str]]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            if key == "sources" and isinstance(value, list | tuple):
                found.append((where, list(value)))
            else:
                found += _cited_sources(value, where)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            found += _cited_sources(value, f"{path}[{i}]")
    return found


# --- support-directory.yaml and local directories -----------------------------------------------


class DirectorySource(_Data):
    """Where an organisation's entry was checked: a page (``url``) and what was seen there."""

    title: str
    url: str | None = None
    seen: str


class Organisation(_Data):
    """One organisation or local service of the support directory."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    address: str = Field(description="Web address (https://...) or, for a local service, where to find it.")
    phone: str | None = None
    services: tuple[str, ...] = Field(min_length=1)
    audience: str
    country: str
    categories: tuple[str, ...] = Field(min_length=1, description="Keys of the directory's categories.")
    last_checked: dt.date
    source: DirectorySource


class SupportDirectory(_Data):
    """The packaged support directory (``care/support-directory.yaml``)."""

    schema_version: Literal[1] = 1
    version: str
    categories: dict[str, str] = Field(description="Category id -> heading, in the order shown.")
    organisations: tuple[Organisation, ...]

    @model_validator(mode="after")
    def _consistent(self) -> SupportDirectory:
        check_organisations(self.organisations, self.categories)
        return self


class LocalDirectory(_Data):
    """A programme's own services, in a file outside the package (same entries as the directory)."""

    schema_version: Literal[1] = 1
    version: str
    organisations: tuple[Organisation, ...] = Field(min_length=1)


def check_organisations(organisations: tuple[Organisation, ...], categories: dict[str, str]) -> None:
    """Ids unique, every category known.

    Raises:
        ValueError: a repeated id or an unknown category (naming them).
    """
    ids = [org.id for org in organisations]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"organisation id listed twice: {', '.join(repeated)}")
    for org in organisations:
        unknown = [c for c in org.categories if c not in categories]
        if unknown:
            raise ValueError(
                f"organisation {org.id}: unknown category {', '.join(unknown)} "
                f"(known: {', '.join(categories)})"
            )


@cache
def load_plan_content() -> PlanContent:
    """The plan's texts (``care/plan-content.yaml``), checked against ``workup.yaml``.

    Raises:
        DataFileError: the file fails its schema, or does not explain every work-up step and item.
    """
    content = load_data(PlanContent, PLAN_CONTENT_FILE)
    workup = load_workup()
    steps = [step for step in workup.steps if step not in content.workup.steps]
    items = [item.id for item in workup.items if item.id not in content.workup.items]
    if steps or items:
        raise DataFileError(
            f"no plain explanation for work-up {', '.join([*steps, *items])}",
            where=f"{PLAN_CONTENT_FILE}: workup",
        )
    return content


@cache
def load_support_directory() -> SupportDirectory:
    """The packaged support directory (``care/support-directory.yaml``).

    Raises:
        DataFileError: the file fails its schema (unknown key or category, repeated id).
    """
    return load_data(SupportDirectory, DIRECTORY_FILE)


def load_local_directory(path: Path, categories: dict[str, str]) -> LocalDirectory:
    """A programme's local services file (YAML, same entries as the packaged directory).

    Args:
        path: the file (``schema_version: 1``, ``version``, ``organisations: [...]``).
        categories: the packaged directory's categories (each entry must use one of them).

    Returns:
        The validated local directory.

    Raises:
        InputError: the file is missing, unreadable, not valid YAML, fails the schema, repeats an
            id or names an unknown category (``where`` names the file and field).
    """
    if not path.is_file():
        raise InputError("no such file", where=str(path), hint="give the path of a local services YAML file")
    try:
        local = parse_file(LocalDirectory, read_yaml(path, str(path)), str(path))
        check_organisations(local.organisations, categories)
    except DataFileError as exc:
        raise InputError(exc.message, where=exc.where, hint="see docs/patient-plan.md") from exc
    except ValueError as exc:
        raise InputError(str(exc), where=str(path), hint="see docs/patient-plan.md") from exc
    return local
