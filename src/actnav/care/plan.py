"""The patient's plan: a plain-language guide built from an evaluation, printable and as PDF.

:func:`build_plan` turns an :class:`~actnav.eligibility.report_model.Evaluation` into a
:class:`PatientPlan`; :func:`render_plan_html` renders it as one standalone printable page and
:func:`render_plan_pdf` as a PDF (WeasyPrint). A web page that shows the plan inside its own layout
includes ``_plan_body.html.j2`` with the context of :func:`plan_context`.

What the plan contains (the topics of the patient-support specification, section 1):

1. the therapy the patient may be considered for (approved products whose indication is eligible
   or needs information), how that kind of therapy works (collection, modification or selection,
   expansion, infusion); when none fits, a plain "none fits now" text, what would have to change
   for an approved product for the patient's cancer (the label rules not met, in plain words),
   the next steps (the care team, trials) and cell therapy in general, naming no product for
   another cancer (pages about one product are cited only when the plan considers it);
2. who may have cell therapy and how patients are checked; the tests ahead (the evaluation's
   work-up, in plain words) and what is not decided yet;
3. the steps ahead, by kind of therapy;
4. side effects and when to call (urgent signs go to the centre's emergency number); the label's
   boxed warnings in plain words; how long to stay near the centre and not drive, read from the
   product label data in force on the evaluation date (``actnav.toxicity.guidance``);
5. questions to ask; 6. clinical trials (open, relevant studies of the evaluation, if any);
7-8. emotional, financial and practical support with the support directory (plus a programme's
   local services); 9. eating, activity and mental health; 10. speaking up for yourself;
and the words used, every source cited, and the disclaimer.

Every text comes from ``data/care/plan-content.yaml`` (written for actnav in plain words, each
block citing public pages) or from the product files (label periods and warnings, with the
label's source); nothing is taken from the evaluation's clinician wording. The plan says once, at
the top, who prepared it with which program and what a product's label is. Abbreviations are
explained in brackets at their first use on the page and listed under "Words used in this plan".

Building is pure (no clock, no I/O besides the packaged data and an optional local directory).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actnav import __version__
from actnav.care.plan_data import (
    MODALITIES,
    GlossaryEntry,
    Modality,
    Organisation,
    PlanContent,
    Sourced,
    load_local_directory,
    load_plan_content,
    load_support_directory,
)
from actnav.care.report import _environment
from actnav.eligibility.engine import Result, SourceInfo
from actnav.eligibility.report_model import Evaluation, ProductResult, TrialMatchResult, Verdict
from actnav.errors import ActnavError, InputError

if TYPE_CHECKING:
    from markupsafe import Markup

__all__ = [
    "PatientPlan",
    "PdfUnavailableError",
    "build_plan",
    "plan_context",
    "render_plan_html",
    "render_plan_pdf",
]

# Trials shown to the patient: open to enrolment, not already excluded, and for the patient's kind
# of cancer. Relevance 0.6 needs at least a top-level diagnosis match (0.6 x diagnosis + 0.2 x
# modality + 0.2 x target, docs/trial-matching.md), so a lymphoma study is not offered to a
# melanoma patient because it shares the modality.
TRIAL_MIN_RELEVANCE = 0.6
TRIALS_SHOWN = 3

# Plain words for the verification tag of a label source (clinical-reference.md section 0).
_VERIFICATION_NOTES = {
    "V": "seen in this source",
    "S": "seen only in a secondary source",
    "R": "not yet checked against the source",
    "U": "uncertain",
}

# An abbreviation: a word of capitals and digits with at least two capitals, optionally joined by
# hyphens (CAR-T, IL-2, MAGE-A4, NCT01234567); "T-cell" and "X-rays" are words, not abbreviations.
ABBREVIATION = re.compile(r"(?<![A-Za-z0-9])[A-Z][A-Z0-9]*[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*(?![A-Za-z0-9])")


# A label statement about staying near the centre or driving (the periods are read from these).
_PERIOD_WORDS = re.compile(r"\bproximity\b|\bdriv(?:e|ing)\b", re.IGNORECASE)


class PdfUnavailableError(ActnavError):
    """The PDF cannot be made here: WeasyPrint or its system libraries are missing (exit 1)."""


# --- the plan model -----------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanSource(_Out):
    """A source the plan cites: a public page, a label record or a support organisation's page."""

    id: str
    title: str
    publisher: str | None = None
    url: str | None = None
    checked: date | None = Field(default=None, description="When the page was last checked.")
    note: str | None = Field(default=None, description="For label sources: how well the fact is verified.")
    detail: str | None = Field(default=None, description="The full citation (label sources).")


class GlossaryTerm(_Out):
    term: str
    short: str = Field(description="The expansion shown in brackets at the first use.")
    meaning: str
    prefix: bool = False


class PlanSection(_Out):
    """A section of the plan: every section cites at least one source (``source_ids``)."""

    id: str
    title: str
    source_ids: list[str]


class TextSection(PlanSection):
    paragraphs: list[str] = Field(default_factory=list)
    bullets: list[str] = Field(default_factory=list)


class ConsideredTherapy(_Out):
    """An approved product the patient may be considered for (eligible or needs information)."""

    product: str = Field(description="International non-proprietary name, lower case.")
    product_id: str
    brand: str
    modality: str
    status: Literal["may_be_suitable", "more_information_needed"]
    diseases: list[str] = Field(description="The indications' diseases, in plain words.")
    text: str
    unconfirmed: bool = Field(description="An indication rests on a fact tagged R or U.")
    source_ids: list[str]


class TherapyStep(_Out):
    id: str = Field(
        description="collection, modification or selection, expansion, infusion; journey step ids."
    )
    title: str
    text: str


class TherapyExplanation(_Out):
    modality: str
    name: str
    summary: str
    steps: list[TherapyStep]
    source_ids: list[str]


class TherapySection(PlanSection):
    considered: list[ConsideredTherapy]
    none_fits: list[str] = Field(
        description="The plain 'none fits now' text, what would have to change, then the next steps; "
        "empty when one fits."
    )
    changes: list[str] = Field(
        default_factory=list,
        description="What would have to change for an approved product for the patient's cancer "
        "(also in none_fits).",
    )
    general: TextSection | None = Field(
        default=None, description="Cell therapy in general: shown instead of `therapies` when none fits."
    )
    therapies: list[TherapyExplanation]


class WorkupEntry(_Out):
    item_id: str
    text: str
    why: list[str]


class WorkupGroup(_Out):
    step: str
    title: str
    entries: list[WorkupEntry]


class WorkupSection(PlanSection):
    intro: str
    groups: list[WorkupGroup]
    none: str | None = None


class Journey(_Out):
    modality: str | None
    name: str
    steps: list[TherapyStep]


class JourneySection(PlanSection):
    intro: str
    journeys: list[Journey]


class SideEffect(_Out):
    id: str
    title: str
    what: str
    signs: list[str]
    source_ids: list[str]


class LabelWarnings(_Out):
    """A considered product's boxed warnings in plain words, with the label's sources."""

    product_id: str
    intro: str
    warnings: list[str]
    source_ids: list[str]


class SideEffectsSection(PlanSection):
    intro: str
    items: list[SideEffect]
    label_warnings: list[LabelWarnings]


class WhenToCallSection(PlanSection):
    paragraphs: list[str]
    urgent_signs: list[str]
    fill_in: list[str]


class StayNearPeriod(_Out):
    """How long to stay near the centre and not drive after one product, from its label data."""

    product_id: str
    brand: str
    stay_near_weeks: int | None = Field(
        description="Weeks to stay near the centre (label in force), if given."
    )
    no_driving_weeks: int | None = Field(description="Weeks without driving (label in force), if given.")
    texts: list[str]
    source_ids: list[str]


class StayNearSection(PlanSection):
    why: str
    periods: list[StayNearPeriod]
    plan_ahead: str


class TrialToAsk(_Out):
    nct_id: str
    url: str
    text: str


class TrialsSection(PlanSection):
    paragraphs: list[str]
    found: str
    trials: list[TrialToAsk]


class SupportOrganisation(_Out):
    id: str
    name: str
    address: str
    phone: str | None = None
    services: list[str]
    audience: str
    country: str
    last_checked: date
    local: bool = Field(description="A service the programme added (local directory file).")
    repeat: bool = Field(description="Listed in full under an earlier category; shown by name only.")
    source_id: str


class SupportGroup(_Out):
    category: str
    title: str
    organisations: list[SupportOrganisation]


class SupportSection(PlanSection):
    emotional: list[str]
    financial: list[str]
    directory_intro: str
    local_label: str
    checked: str = Field(description="'Checked {date}' text, {date} filled in per organisation.")
    groups: list[SupportGroup]
    text_source_ids: list[str] = Field(description="Sources of the texts (the organisations cite their own).")


class HolisticSection(PlanSection):
    intro: str
    blocks: list[TextSection]


class PatientPlan(_Out):
    """The patient's plan for one evaluation (all text in plain words, every section sourced)."""

    schema_version: str = "1.0"
    as_of: date = Field(description="The evaluation date the plan was built from.")
    generated_by: str
    content_version: str = Field(description="Version of plan-content.yaml.")
    title: str
    intro: str
    about: str = Field(description="Who prepared the plan with which program, and what a label is.")
    therapy: TherapySection
    evaluation: TextSection
    workup: WorkupSection
    undecided: TextSection
    journey: JourneySection
    side_effects: SideEffectsSection
    when_to_call: WhenToCallSection
    stay_near: StayNearSection | None = Field(description="Absent when no product is considered.")
    questions: TextSection
    trials: TrialsSection
    support: SupportSection
    holistic: HolisticSection
    self_advocacy: TextSection
    words: TextSection = Field(description="Section header of the word list (glossary).")
    glossary: list[GlossaryTerm] = Field(description="The abbreviations the plan uses, A to Z.")
    sources: list[PlanSource] = Field(description="Every source cited, in order of first citation.")
    disclaimer: str

    def sections(self) -> list[PlanSection]:
        """The sections in page order (the stay-near section only when a product is considered)."""
        ordered: list[PlanSection | None] = [
            self.therapy,
            self.evaluation,
            self.workup,
            self.undecided,
            self.journey,
            self.side_effects,
            self.when_to_call,
            self.stay_near,
            self.questions,
            self.trials,
            self.support,
            self.holistic,
            self.self_advocacy,
            self.words,
        ]
        return [s for s in ordered if s is not None]

    def source(self, source_id: str) -> PlanSource:
        """The cited source with this id.

        Raises:
            KeyError: no such source in the plan.
        """
        for src in self.sources:
            if src.id == source_id:
                return src
        raise KeyError(source_id)


# --- building -----------------------------------------------------------------------------------


class _Sources:
    """The plan's sources as they are cited: content pages, label records, directory pages."""

    def __init__(self, content: PlanContent, products: Iterable[str] = ()) -> None:
        self._content = content
        self._products = frozenset(products)
        self._by_id: dict[str, PlanSource] = {}
        self._by_url: dict[str, str] = {}
        self._label_ids: dict[tuple[str, str, str | None, str | None], str] = {}

    def _add(self, source: PlanSource) -> str:
        """Register a source; a page already cited under another id (same URL) keeps that id."""
        if source.id in self._by_id:
            return source.id
        if source.url and source.url in self._by_url:
            return self._by_url[source.url]
        self._by_id[source.id] = source
        if source.url:
            self._by_url[source.url] = source.id
        return source.id

    def content(self, refs: Iterable[str]) -> list[str]:
        """Cite content pages; a page about one product is left out unless the plan considers it."""
        ids: list[str] = []
        for ref in refs:
            entry = self._content.source(ref)
            if entry.product is not None and entry.product not in self._products:
                continue
            source_id = self._add(
                PlanSource(
                    id=ref, title=entry.title, publisher=entry.publisher, url=entry.url, checked=entry.checked
                )
            )
            if source_id not in ids:
                ids.append(source_id)
        return ids

    def label(self, brand: str, info: SourceInfo) -> str:
        """A label source (a product file's reference), shown as '<brand> label information'."""
        key = (brand, info.citation, info.section, info.url)
        if key not in self._label_ids:
            source_id = f"label-{len(self._label_ids) + 1}"
            section = f", {info.section}" if info.section else ""
            self._label_ids[key] = source_id
            self._by_id[source_id] = PlanSource(
                id=source_id,
                title=f"{brand} label information{section}",
                url=info.url,
                note=_VERIFICATION_NOTES.get(info.verification, info.verification),
                detail=info.citation,
            )
        return self._label_ids[key]

    def organisation(self, org: Organisation) -> str:
        return self._add(
            PlanSource(
                id=f"directory-{org.id}",
                title=org.source.title,
                publisher=org.name,
                url=org.source.url,
                checked=org.last_checked,
            )
        )

    def cited(self, order: Iterable[str]) -> list[PlanSource]:
        """The sources with these ids, in first-cited order."""
        return [self._by_id[s] for s in _merge(order)]


def _merge(*lists: Iterable[str]) -> list[str]:
    """The ids of several lists, first-seen order, without repeats."""
    return list(dict.fromkeys(i for ids in lists for i in ids))


def _therapy_name(product: ProductResult) -> str:
    return f"{product.brand} ({product.product})"


def _kind_of(modality: str | None, content: PlanContent) -> str:
    """'a TIL therapy' for a modality of the plan content; 'a cell therapy' for any other."""
    for m in MODALITIES:
        if m == modality:
            return content.therapies[m].short_name
    return content.trials.other_therapy


def _considered_products(ev: Evaluation) -> list[ProductResult]:
    """Approved products with an eligible or needs-information indication: eligible first."""
    possible = [
        p
        for p in ev.products
        if p.approved_on_as_of and any(i.verdict is not Verdict.NOT_ELIGIBLE for i in p.indications)
    ]

    def rank(p: ProductResult) -> tuple[int, str]:
        eligible = any(i.verdict is Verdict.ELIGIBLE for i in p.indications)
        return (0 if eligible else 1, p.brand.casefold())

    return sorted(possible, key=rank)


def _modalities(products: list[ProductResult]) -> list[Modality]:
    present = {p.modality for p in products}
    return [m for m in MODALITIES if m in present]


def _plain_list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _what_would_change(
    ev: Evaluation, content: PlanContent, sources: _Sources
) -> tuple[list[str], list[str]]:
    """For approved products that fit none of the patient's records: the label rules not met, in plain
    words, and the label sources cited.

    Only indications whose every failed top-level rule has a plain text (``considered.not_met.rules``)
    are described: a failed diagnosis rule has none, so products for other cancers are never named.
    """
    text = content.considered.not_met
    paragraphs: list[str] = []
    cited: list[str] = []
    for product in ev.products:
        if not product.approved_on_as_of:
            continue
        for ind in product.indications:
            if ind.verdict is not Verdict.NOT_ELIGIBLE:
                continue
            failed = [c.id for c in ind.criteria if c.result is Result.NOT_MET]
            if not failed or any(rule not in text.rules for rule in failed):
                continue
            disease = content.diseases.get(ind.disease, ind.disease.replace("_", " "))
            intro = text.intro.format(therapy=_therapy_name(product), disease=disease)
            for line in [intro, *(text.rules[rule] for rule in failed)]:
                if line not in paragraphs:
                    paragraphs.append(line)
            cited += [sources.label(product.brand, ind.source), *sources.content(text.sources)]
    return paragraphs, _merge(cited)


def _therapy_section(
    ev: Evaluation, products: list[ProductResult], content: PlanContent, sources: _Sources
) -> TherapySection:
    text = content.considered
    considered: list[ConsideredTherapy] = []
    for product in products:
        eligible = [i for i in product.indications if i.verdict is Verdict.ELIGIBLE]
        possible = eligible or [i for i in product.indications if i.verdict is Verdict.NEEDS_INFORMATION]
        diseases: list[str] = []
        for ind in possible:
            plain = content.diseases.get(ind.disease, ind.disease.replace("_", " "))
            if plain not in diseases:
                diseases.append(plain)
        status: Literal["may_be_suitable", "more_information_needed"] = (
            "may_be_suitable" if eligible else "more_information_needed"
        )
        template = text.eligible if eligible else text.needs_information
        sentence = template.format(
            therapy=_therapy_name(product),
            kind=_kind_of(product.modality, content),
            disease=_plain_list(diseases),
        )
        considered.append(
            ConsideredTherapy(
                product=product.product,
                product_id=product.id,
                brand=product.brand,
                modality=product.modality,
                status=status,
                diseases=diseases,
                text=sentence,
                unconfirmed=any(i.unconfirmed for i in possible),
                source_ids=[sources.label(product.brand, i.source) for i in possible],
            )
        )
    # When none fits: cell therapy in general, no product of another cancer (QA, issue 5).
    therapies = [
        TherapyExplanation(
            modality=m,
            name=content.therapies[m].name,
            summary=content.therapies[m].summary,
            steps=[TherapyStep(id=s.id, title=s.title, text=s.text) for s in content.therapies[m].steps],
            source_ids=sources.content(content.therapies[m].sources),
        )
        for m in _modalities(products)
    ]
    general: TextSection | None = None
    changes: list[str] = []
    change_sources: list[str] = []
    none_fits: list[str] = []
    if not considered:
        block = text.general
        general = TextSection(
            id="therapy-general",
            title=block.title,
            source_ids=sources.content(block.sources),
            paragraphs=list(block.paragraphs),
        )
        changes, change_sources = _what_would_change(ev, content, sources)
        none_fits = [text.none[0], *changes, *text.none[1:]]
    cited = _merge(
        sources.content(text.sources),
        *(c.source_ids for c in considered),
        change_sources,
        general.source_ids if general else [],
        *(t.source_ids for t in therapies),
    )
    return TherapySection(
        id="therapy",
        title=text.title,
        source_ids=cited,
        considered=considered,
        none_fits=none_fits,
        changes=changes,
        general=general,
        therapies=therapies,
    )


def _text_section(section_id: str, block: Sourced, sources: _Sources, **fields: Any) -> TextSection:
    return TextSection(id=section_id, source_ids=sources.content(block.sources), **fields)


def _owner_products(ev: Evaluation) -> tuple[dict[str, ProductResult], dict[str, list[str]]]:
    """Products by id, and the product ids of each fitness trial (for work-up references)."""
    by_id = {p.id: p for p in ev.products}
    fitness = {f.id: list(f.products) for f in ev.fitness}
    return by_id, fitness


def _workup_section(ev: Evaluation, content: PlanContent, sources: _Sources) -> WorkupSection:
    text = content.workup
    products, fitness = _owner_products(ev)
    groups: dict[str, WorkupGroup] = {}
    for item in ev.workup:
        why: list[str] = []
        for ref in item.settles:
            owner = ref.split("/", 1)[0]
            if owner in products:
                reason = text.helps_decide.format(therapy=_therapy_name(products[owner]))
            elif owner in fitness and fitness[owner] and fitness[owner][0] in products:
                reason = text.fitness_check.format(therapy=_therapy_name(products[fitness[owner][0]]))
            else:
                reason = text.trial_check
            if reason not in why:
                why.append(reason)
        group = groups.setdefault(
            item.step,
            WorkupGroup(step=item.step, title=text.steps.get(item.step, item.step_name), entries=[]),
        )
        plain = text.items.get(item.id, item.text)
        group.entries.append(WorkupEntry(item_id=item.id, text=plain, why=why))
    return WorkupSection(
        id="workup",
        title=text.title,
        source_ids=sources.content(text.sources),
        intro=text.intro,
        groups=list(groups.values()),
        none=None if groups else text.none,
    )


def _undecided_section(
    ev: Evaluation, products: list[ProductResult], content: PlanContent, sources: _Sources
) -> TextSection:
    text = content.undecided
    bullets: list[str] = []
    for product in products:
        possible = [i for i in product.indications if i.verdict is not Verdict.NOT_ELIGIBLE]
        name = _therapy_name(product)
        if not any(i.verdict is Verdict.ELIGIBLE for i in possible):
            bullets.append(text.needs_information.format(therapy=name))
        if any(i.unconfirmed for i in possible):
            bullets.append(text.unconfirmed.format(therapy=name))
    by_id, fitness = _owner_products(ev)
    for item in ev.workup:
        for ref in item.settles:
            owners = fitness.get(ref.split("/", 1)[0], [])
            for pid in owners[:1]:
                if pid in by_id:
                    line = text.fitness.format(therapy=_therapy_name(by_id[pid]))
                    if line not in bullets:
                        bullets.append(line)
    bullets.append(text.always)
    labels = [
        sources.label(p.brand, i.source)
        for p in products
        for i in p.indications
        if i.verdict is not Verdict.NOT_ELIGIBLE
    ]
    cited = _merge(sources.content(text.sources), labels)
    return TextSection(id="undecided", title=text.title, source_ids=cited, bullets=bullets)


def _journey_section(
    products: list[ProductResult], content: PlanContent, sources: _Sources
) -> JourneySection:
    text = content.journey
    modalities: list[Modality | None] = list(_modalities(products)) or [None]
    journeys = []
    for modality in modalities:
        steps = [
            TherapyStep(
                id=step.id,
                title=step.title,
                text=step.by_modality.get(modality, step.text) if modality else step.text,
            )
            for step in text.steps
        ]
        name = content.therapies[modality].name if modality else ""
        journeys.append(Journey(modality=modality, name=name, steps=steps))
    by_modality = [text.by_modality_sources.get(m, ()) for m in modalities if m is not None]
    return JourneySection(
        id="journey",
        title=text.title,
        source_ids=sources.content([*text.sources, *(ref for refs in by_modality for ref in refs)]),
        intro=text.intro,
        journeys=journeys,
    )


def _plain_warning(text: str, content: PlanContent) -> str:
    lowered = text.lower()
    for rule in content.side_effects.label_warnings:
        if any(word in lowered for word in rule.match):
            return rule.text
    return content.side_effects.label_warning_other


def _side_effects_section(
    products: list[ProductResult], content: PlanContent, sources: _Sources
) -> SideEffectsSection:
    text = content.side_effects
    modalities = set(_modalities(products)) or set(MODALITIES)
    items: list[SideEffect] = []
    for item in text.items:
        if not modalities & set(item.modalities):
            continue
        cited_item = sources.content(item.sources)
        if not cited_item:
            continue  # written about one product's study, and the plan does not consider it
        items.append(
            SideEffect(
                id=item.id,
                title=item.title,
                what=item.what,
                signs=list(item.signs),
                source_ids=cited_item,
            )
        )
    warnings: list[LabelWarnings] = []
    for product in products:
        boxed = [n for n in product.notes if n.kind == "boxed_warning"]
        if not boxed:
            continue
        plain: list[str] = []
        for note in boxed:
            line = _plain_warning(note.text, content)
            if line not in plain:
                plain.append(line)
        label_ids: list[str] = []
        for note in boxed:
            label = sources.label(product.brand, note.source)
            if label not in label_ids:
                label_ids.append(label)
        warnings.append(
            LabelWarnings(
                product_id=product.id,
                intro=text.warnings_intro.format(therapy=_therapy_name(product)),
                warnings=plain,
                source_ids=label_ids,
            )
        )
    cited = _merge(*(i.source_ids for i in items), *(w.source_ids for w in warnings))
    return SideEffectsSection(
        id="side-effects",
        title=text.title,
        source_ids=cited,
        intro=text.intro if products else text.none_intro,
        items=items,
        label_warnings=warnings,
    )


def _stay_near_section(
    ev: Evaluation, products: list[ProductResult], content: PlanContent, sources: _Sources
) -> StayNearSection | None:
    if not products:
        return None
    from actnav.toxicity.guidance import monitoring_plan

    text = content.stay_near
    periods: list[StayNearPeriod] = []
    for product in products:
        plan = monitoring_plan(product.id, ev.as_of)
        name = _therapy_name(product)
        # The label statements that give the periods (a monitoring line may carry them too).
        lines = [line for line in plan.monitoring if _PERIOD_WORDS.search(line.text)]
        texts: list[str] = []
        if plan.proximity_weeks is not None:
            texts.append(text.stay.format(therapy=name, weeks=plan.proximity_weeks))
        if plan.no_driving_weeks is not None:
            texts.append(text.drive.format(weeks=plan.no_driving_weeks))
        advice = text.product_advice.get(product.id)
        if plan.proximity_weeks is None or plan.no_driving_weeks is None:
            texts.append(text.no_period.format(therapy=name))
        if any(line.source.verification != "V" for line in lines):
            texts.append(text.secondary)
        source_ids = [sources.label(product.brand, line.source) for line in lines]
        if advice is not None:
            texts.append(advice.text)
            source_ids += sources.content(advice.sources)
        periods.append(
            StayNearPeriod(
                product_id=product.id,
                brand=product.brand,
                stay_near_weeks=plan.proximity_weeks,
                no_driving_weeks=plan.no_driving_weeks,
                texts=texts,
                source_ids=_merge(source_ids),
            )
        )
    cited = _merge(sources.content(text.sources), *(p.source_ids for p in periods))
    return StayNearSection(
        id="stay-near",
        title=text.title,
        source_ids=cited,
        why=text.why,
        periods=periods,
        plan_ahead=text.plan_ahead,
    )


def _trials_to_ask(trials: list[TrialMatchResult], content: PlanContent) -> list[TrialToAsk]:
    text = content.trials
    chosen: list[TrialToAsk] = []
    for trial in trials:
        status = text.statuses.get(trial.overall_status or "")
        if status is None or trial.verdict is Verdict.NOT_ELIGIBLE or trial.relevance < TRIAL_MIN_RELEVANCE:
            continue
        line = text.study.format(nct=trial.nct_id, therapy=_kind_of(trial.modality, content), status=status)
        chosen.append(TrialToAsk(nct_id=trial.nct_id, url=trial.url, text=line))
        if len(chosen) == TRIALS_SHOWN:
            break
    return chosen


def _support_section(content: PlanContent, sources: _Sources, directory_extra: Path | None) -> SupportSection:
    directory = load_support_directory()
    local: tuple[Organisation, ...] = ()
    if directory_extra is not None:
        local = load_local_directory(directory_extra, directory.categories).organisations
        packaged = {org.id for org in directory.organisations}
        clash = sorted(org.id for org in local if org.id in packaged)
        if clash:
            raise InputError(
                f"organisation id already in the packaged directory: {', '.join(clash)}",
                where=str(directory_extra),
                hint="give local services their own ids",
            )
    text = content.support
    text_sources = sources.content(text.sources)
    cited = list(text_sources)
    listed: set[str] = set()
    groups: list[SupportGroup] = []
    for category, title in directory.categories.items():
        orgs = [(org, True) for org in local if category in org.categories]
        orgs += [(org, False) for org in directory.organisations if category in org.categories]
        if not orgs:
            continue
        entries = []
        for org, is_local in orgs:
            source_id = sources.organisation(org)
            repeat = org.id in listed
            listed.add(org.id)
            if source_id not in cited:
                cited.append(source_id)
            entries.append(
                SupportOrganisation(
                    id=org.id,
                    name=org.name,
                    address=org.address,
                    phone=org.phone,
                    services=list(org.services),
                    audience=org.audience,
                    country=org.country,
                    last_checked=org.last_checked,
                    local=is_local,
                    repeat=repeat,
                    source_id=source_id,
                )
            )
        groups.append(SupportGroup(category=category, title=title, organisations=entries))
    return SupportSection(
        id="support",
        title=text.title,
        source_ids=cited,
        emotional=list(text.emotional),
        financial=list(text.financial),
        directory_intro=text.directory_intro,
        local_label=text.local_label,
        checked=text.checked,
        groups=groups,
        text_source_ids=text_sources,
    )


def _holistic_section(content: PlanContent, sources: _Sources) -> HolisticSection:
    text = content.holistic
    blocks = [
        TextSection(
            id=block.id,
            title=block.title,
            source_ids=sources.content(block.sources),
            paragraphs=list(block.paragraphs),
            bullets=list(block.bullets),
        )
        for block in text.blocks
    ]
    cited = _merge(*(b.source_ids for b in blocks))
    return HolisticSection(id="holistic", title=text.title, source_ids=cited, intro=text.intro, blocks=blocks)


def _strings(node: Any, skip: frozenset[str] = frozenset({"url", "address", "detail", "id"})) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() if key not in skip for s in _strings(value, skip)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value, skip)]
    return []


def _glossary_used(plan_data: dict[str, Any], glossary: tuple[GlossaryEntry, ...]) -> list[GlossaryTerm]:
    """The glossary terms that occur in the plan's text, A to Z (and the terms their meanings use)."""
    lookup = _term_lookup(glossary)
    used: set[str] = set()
    pending = [t for text in _strings(plan_data) for t in _terms_in(text, lookup)]
    while pending:
        term = pending.pop()
        if term in used:
            continue
        used.add(term)
        entry = lookup.exact[term]
        pending += _terms_in(f"{entry.short} {entry.meaning}", lookup)
    return [
        GlossaryTerm(term=g.term, short=g.short, meaning=g.meaning, prefix=g.prefix)
        for g in sorted(glossary, key=lambda g: g.term)
        if g.term in used
    ]


def build_plan(evaluation: Evaluation, *, directory_extra: Path | None = None) -> PatientPlan:
    """Build the patient's plan from an evaluation.

    Args:
        evaluation: the evaluation (``actnav.eligibility.evaluate.evaluate_patient``, with trials
            when they were matched).
        directory_extra: a programme's local services file (YAML: ``schema_version: 1``,
            ``version``, ``organisations`` with the fields of the support directory); its entries
            are listed first under their categories, marked as the programme's own.

    Returns:
        The :class:`PatientPlan`: the therapies considered (eligible or needs-information
        indications of approved products) or the plain "none fits now" text, the work-up ahead and
        what is not decided, the steps ahead, side effects and when to call, the stay-near and
        no-driving periods of the label in force on ``evaluation.as_of`` (weeks), questions, open
        relevant trials, support organisations, holistic care, self-advocacy, the words used, the
        sources cited and the disclaimer.

    Raises:
        InputError: ``directory_extra`` is missing or invalid.
        DataFileError: a packaged data file is invalid.

    Source:
        Texts: ``data/care/plan-content.yaml`` (each block cites its pages); organisations:
        ``data/care/support-directory.yaml``; periods and boxed warnings: the product files, via
        :func:`actnav.toxicity.guidance.monitoring_plan` and the evaluation's label notes.
    """
    content = load_plan_content()
    products = _considered_products(evaluation)
    sources = _Sources(content, products=[p.id for p in products])
    therapy = _therapy_section(evaluation, products, content, sources)
    evaluation_section = _text_section(
        "evaluation",
        content.evaluation,
        sources,
        title=content.evaluation.title,
        paragraphs=list(content.evaluation.paragraphs),
        bullets=list(content.evaluation.bullets),
    )
    workup = _workup_section(evaluation, content, sources)
    undecided = _undecided_section(evaluation, products, content, sources)
    journey = _journey_section(products, content, sources)
    side_effects = _side_effects_section(products, content, sources)
    call = content.when_to_call
    when_to_call = WhenToCallSection(
        id="when-to-call",
        title=call.title,
        source_ids=sources.content(call.sources),
        paragraphs=list(call.paragraphs),
        urgent_signs=list(call.urgent_signs),
        fill_in=list(call.fill_in),
    )
    stay_near = _stay_near_section(evaluation, products, content, sources)
    questions = _text_section(
        "questions",
        content.questions,
        sources,
        title=content.questions.title,
        paragraphs=[content.questions.intro],
        bullets=list(content.questions.items),
    )
    trials_text = content.trials
    chosen = _trials_to_ask(evaluation.trials, content)
    trials = TrialsSection(
        id="trials",
        title=trials_text.title,
        source_ids=sources.content(trials_text.sources),
        paragraphs=list(trials_text.paragraphs),
        found=trials_text.found if chosen else trials_text.none_found,
        trials=chosen,
    )
    support = _support_section(content, sources, directory_extra)
    holistic = _holistic_section(content, sources)
    advocacy = _text_section(
        "self-advocacy",
        content.self_advocacy,
        sources,
        title=content.self_advocacy.title,
        paragraphs=[content.self_advocacy.intro],
        bullets=list(content.self_advocacy.bullets),
    )
    words = _text_section("words", content.words, sources, title=content.words.title)
    fields: dict[str, Any] = {
        "as_of": evaluation.as_of,
        "generated_by": f"actnav {__version__}",
        "content_version": content.version,
        "title": content.title,
        "intro": content.intro.format(date=evaluation.as_of.isoformat()),
        "about": content.about,
        "therapy": therapy,
        "evaluation": evaluation_section,
        "workup": workup,
        "undecided": undecided,
        "journey": journey,
        "side_effects": side_effects,
        "when_to_call": when_to_call,
        "stay_near": stay_near,
        "questions": questions,
        "trials": trials,
        "support": support,
        "holistic": holistic,
        "self_advocacy": advocacy,
        "words": words,
        "disclaimer": content.disclaimer,
    }
    order = [s for section in fields.values() if isinstance(section, PlanSection) for s in section.source_ids]
    fields["sources"] = sources.cited(order)
    draft = PatientPlan(glossary=[], **fields)
    glossary = _glossary_used(draft.model_dump(mode="json"), content.glossary)
    return draft.model_copy(update={"glossary": glossary})


# --- abbreviations ------------------------------------------------------------------------------


class _TermLookup:
    def __init__(self, glossary: Iterable[GlossaryEntry | GlossaryTerm]) -> None:
        self.exact: dict[str, GlossaryEntry | GlossaryTerm] = {g.term: g for g in glossary}
        self.prefixes = [g for g in self.exact.values() if g.prefix]

    def find(self, token: str) -> GlossaryEntry | GlossaryTerm | None:
        if token in self.exact:
            return self.exact[token]
        for entry in self.prefixes:
            if token.startswith(entry.term) and token[len(entry.term) :].isdigit():
                return entry
        return None


def _term_lookup(glossary: Iterable[GlossaryEntry | GlossaryTerm]) -> _TermLookup:
    return _TermLookup(glossary)


def _terms_in(text: str, lookup: _TermLookup) -> list[str]:
    found = []
    for match in ABBREVIATION.finditer(text):
        entry = lookup.find(match.group(0))
        if entry is not None:
            found.append(entry.term)
    return found


class Explainer:
    """Escape a text for HTML and mark its abbreviations; the first use of each on the page gets
    its expansion in brackets ("CRS (cytokine release syndrome)"), later ones only an ``<abbr>``.

    One instance per rendered page: it remembers which terms the page has explained so far, so
    the template must call it on the texts in the order they appear.
    """

    def __init__(self, glossary: Iterable[GlossaryTerm]) -> None:
        self._lookup = _term_lookup(glossary)
        self._explained: set[str] = set()

    def __call__(self, text: object) -> Markup:
        from markupsafe import Markup, escape

        source = "" if text is None else str(text)
        out: list[str] = []
        last = 0
        for match in ABBREVIATION.finditer(source):
            entry = self._lookup.find(match.group(0))
            if entry is None:
                continue
            out.append(str(escape(source[last : match.start()])))
            token = str(escape(match.group(0)))
            short = str(escape(entry.short))
            out.append(f'<abbr title="{short}">{token}</abbr>')
            if entry.term not in self._explained:
                self._explained.add(entry.term)
                out.append(f" ({short})")
            last = match.end()
        out.append(str(escape(source[last:])))
        return Markup("".join(out))


# --- rendering ----------------------------------------------------------------------------------


def plan_context(plan: PatientPlan) -> dict[str, Any]:
    """The template context of ``plan.html.j2`` and of the body partial ``_plan_body.html.j2``.

    Call it once per rendered page (the ``explain`` helper remembers what the page explained).

    Returns:
        ``plan``: the :class:`PatientPlan`; ``explain``: a callable that escapes a text and
        explains its abbreviations at first use (returns markup); ``source_by_id``: source id ->
        :class:`PlanSource`; ``source_number``: source id -> its number in the sources list
        (1-based); ``heading_level``: 2 (the partial's section headings are ``<h2>``).
    """
    return {
        "plan": plan,
        "explain": Explainer(plan.glossary),
        "source_by_id": {s.id: s for s in plan.sources},
        "source_number": {s.id: n for n, s in enumerate(plan.sources, 1)},
        "heading_level": 2,
    }


def render_plan_html(plan: PatientPlan, *, app_header: Markup | None = None) -> str:
    """The plan as one standalone printable HTML page (inline print CSS, no scripts or external assets).

    Args:
        plan: the plan (:func:`build_plan`).
        app_header: markup placed first in the body (the web application's navigation bar, hidden
            in print); None for the standalone page.

    Returns:
        An HTML5 document.
    """
    return (
        _environment().get_template("plan.html.j2").render({**plan_context(plan), "app_header": app_header})
    )


def render_plan_pdf(plan: PatientPlan) -> bytes:
    """The plan as a PDF (the HTML page laid out by WeasyPrint; nothing is fetched from the network).

    Args:
        plan: the plan (:func:`build_plan`).

    Returns:
        The PDF document (bytes starting with ``%PDF``).

    Raises:
        PdfUnavailableError: WeasyPrint or the system libraries it needs (Pango, HarfBuzz,
            fontconfig) cannot be loaded.
    """
    html = render_plan_html(plan)
    try:
        weasyprint = importlib.import_module("weasyprint")  # slow to import: only here
    except (ImportError, OSError) as exc:
        raise PdfUnavailableError(
            f"cannot make a PDF: WeasyPrint or its system libraries could not be loaded ({exc})",
            hint="install WeasyPrint's system libraries (Pango, HarfBuzz) or print the HTML page to PDF",
        ) from exc
    fetcher_class: Callable[..., Any] | None = getattr(weasyprint, "URLFetcher", None)
    # No external assets are expected; refuse any fetch (data files must not make it call out).
    fetcher = fetcher_class(allowed_protocols=()) if fetcher_class is not None else _refuse_fetch
    pdf: bytes = weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf()
    return pdf


def _refuse_fetch(url: str) -> dict[str, Any]:
    raise ValueError(f"the plan fetches no resources: {url}")
