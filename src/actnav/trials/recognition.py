"""Adoptive cell therapy (ACT) recognition: is a trial an ACT trial, which modality, which targets.

The vocabulary (terms, target antigens, named products, context rules, field weights) is data:
``actnav/data/trials/act-vocabulary.yaml``, validated by :class:`VocabularyFile` (unknown keys are
rejected; a bad regex or a reference to an undeclared source raises
:class:`~actnav.errors.DataFileError` naming the file, the entry and the field). This module is the
engine that reads it; it does no I/O beyond loading that packaged file.

Rules (see also ``docs/trials.md``):

1. **Fields.** Descriptive fields (title, official title, interventions with their descriptions and
   other names, keywords, brief summary) can make a trial an ACT trial. The eligibility text never
   can: a trial that merely excludes "prior CAR-T" or mentions "T cells" or "NK cells" in its
   criteria is not ACT. For a trial recognised from its descriptive fields, the inclusion part of
   the criteria fills in only what those fields leave open (no modality vote, no target, unknown
   cell source); it is not read otherwise. Conditions give target antigens only ("CD19
   Positive"), never ACT or a modality ("NK/T-cell lymphoma").
2. **Context.** A match named as a prior or other therapy ("prior CAR-T", "after CD19 CAR-T",
   "CAR-T-exposed") is ignored; a target followed by "negative" is not a target; a term whose
   sentence matches its ``blocked_in_sentence`` pattern (bispecific antibodies, TIL as a biomarker,
   NK-cell counts) is ignored.
3. **Modality.** Each counted match votes for its modality with ``weight x field factor``; each
   target antigen votes for its ``default_modality`` (surface antigens: CAR-T; peptide-HLA
   antigens: TCR-T). The highest total wins; ties go to the first of :data:`MODALITIES` (CAR-T, TCR-T,
   TIL, CAR-NK/NK, other). An ACT trial with no vote is ``other cell therapy``.
4. **Targets.** From the first tier of fields that names any: title/interventions/keywords, then
   summary/conditions, then inclusion criteria; plus the targets of any named product. TIL trials
   take targets from the first tier and products only (TIL are polyclonal).
5. **Cell source.** Autologous and allogeneic cues (attached to cells, never to a stem-cell
   transplant), named products, and the modality's default (TIL: autologous) are summed; the larger
   wins, a tie is ``unknown``.

Also normalised: API v2 markdown escapes (``\\>=``) are removed, and compound antigen forms are
expanded (``CD19/22``, ``CAR-20/19``, ``4SCAR19/22``, ``CART19`` name CD19, CD20 and CD22).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from actnav.errors import DataFileError
from actnav.knowledge.models import Reference, SourceRef
from actnav.trials.models import TrialRecord

Modality = Literal["CAR-T", "TCR-T", "TIL", "CAR-NK/NK", "other cell therapy"]
CellSource = Literal["autologous", "allogeneic", "unknown"]
FieldGroup = Literal["title", "interventions", "keywords", "summary", "conditions", "criteria"]
EvidenceKind = Literal["act", "modality", "product", "target", "cell_source", "not_act"]

MODALITIES: tuple[Modality, ...] = ("CAR-T", "TCR-T", "TIL", "CAR-NK/NK", "other cell therapy")
DESCRIPTIVE: frozenset[str] = frozenset({"title", "interventions", "keywords", "summary"})
"""Field groups that can make a trial an ACT trial."""
_TIER_A: frozenset[str] = frozenset({"title", "interventions", "keywords"})
_TIER_B: frozenset[str] = frozenset({"summary", "conditions"})
_DEFAULT_TERM_FIELDS: tuple[FieldGroup, ...] = ("title", "interventions", "keywords", "summary", "criteria")
_TARGET_FIELDS: tuple[FieldGroup, ...] = (
    "title",
    "interventions",
    "keywords",
    "summary",
    "conditions",
    "criteria",
)
VOCABULARY_FILE = "act-vocabulary.yaml"


# --------------------------------------------------------------------------------------------
# The vocabulary file's schema
# --------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Patterns(_Strict):
    phrases: tuple[str, ...] = Field(default=(), description="Literal phrases (space/hyphen tolerant).")
    regex: tuple[str, ...] = Field(default=(), description="Python regular expressions.")
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _has_pattern(self) -> _Patterns:
        if not self.phrases and not self.regex:
            raise ValueError("needs at least one of phrases, regex")
        return self


class VocabularySettings(_Strict):
    """Context rules and weights (see the comments in the YAML file)."""

    field_factor: dict[FieldGroup, float]
    target_default_weight: float = Field(ge=0)
    target_directed_weight: float = Field(gt=0)
    prior_context_before: str
    prior_list_context_before: str
    prior_context_after: str
    negated_target_after: str
    target_directed_connectors: tuple[str, ...]
    target_directed_cells: str
    target_directed_verbs: str
    target_directed_blocked_in_sentence: str


class ModalityEntry(_Strict):
    """One modality: its display name and default cell source (TIL: autologous)."""

    id: Modality
    name: str
    default_cell_source: Literal["autologous", "allogeneic"] | None = None
    remarks: str | None = None


class TermEntry(_Patterns):
    """A word or phrase that signals ACT, a modality or a cell source.

    ``kind``: ``act`` (ACT without a modality, or with ``modality`` for other cell therapies),
    ``modality`` (votes for ``modality``), ``cell_source`` (votes for ``cell_source``).
    ``establishes_act``: whether a match in a descriptive field makes the trial ACT.
    ``fields``: where the term counts (default: all but conditions).
    """

    id: str
    kind: Literal["act", "modality", "cell_source"]
    modality: Modality | None = None
    cell_source: Literal["autologous", "allogeneic"] | None = None
    weight: float = Field(default=1.0, gt=0)
    establishes_act: bool = True
    fields: tuple[FieldGroup, ...] | None = None
    blocked_in_sentence: str | None = None
    source: SourceRef | None = None
    remarks: str | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> TermEntry:
        if self.kind == "modality" and self.modality is None:
            raise ValueError(f"term {self.id!r}: kind modality needs a modality")
        if self.kind == "cell_source" and self.cell_source is None:
            raise ValueError(f"term {self.id!r}: kind cell_source needs a cell_source")
        return self


class TargetEntry(_Patterns):
    """A target antigen: ``id`` is the normalised name reported."""

    id: str
    default_modality: Modality
    source: SourceRef | None = None
    remarks: str | None = None


class ProductEntry(_Patterns):
    """A named product (INN, brand or code) with its modality, targets and cell source.

    A product with ``modality: null`` is a known non-ACT cell product (kept so the evidence shows it).
    """

    id: str
    modality: Modality | None
    targets: tuple[str, ...] = ()
    cell_source: Literal["autologous", "allogeneic"] | None = None
    source: SourceRef | None = None
    remarks: str | None = None


class VocabularyFile(_Strict):
    """``act-vocabulary.yaml``."""

    schema_version: Literal[1] = 1
    id: str
    version: str
    history: tuple[str, ...] = ()
    references: dict[str, Reference]
    remarks: str | None = None
    settings: VocabularySettings
    modalities: tuple[ModalityEntry, ...]
    shared_patterns: dict[str, str] = Field(default_factory=dict)
    terms: tuple[TermEntry, ...]
    targets: tuple[TargetEntry, ...]
    products: tuple[ProductEntry, ...]

    @model_validator(mode="after")
    def _cross_checks(self) -> VocabularyFile:
        ids = [m.id for m in self.modalities]
        if sorted(ids) != sorted(MODALITIES):
            raise ValueError(f"modalities must list each of {', '.join(MODALITIES)} once")
        target_ids = {t.id for t in self.targets}
        for kind, entries in (("terms", self.terms), ("targets", self.targets), ("products", self.products)):
            seen: set[str] = set()
            for entry in entries:
                if entry.id in seen:
                    raise ValueError(f"{kind}: duplicate id {entry.id!r}")
                seen.add(entry.id)
                if entry.source is not None and entry.source.ref not in self.references:
                    raise ValueError(
                        f"{kind}: {entry.id}: source ref {entry.source.ref!r} is not in references"
                    )
        for product in self.products:
            unknown = [t for t in product.targets if t not in target_ids]
            if unknown:
                raise ValueError(f"products: {product.id}: unknown target(s) {', '.join(unknown)}")
        return self


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


class Evidence(_Strict):
    """One matched phrase and where it was found.

    Attributes:
        kind: ``act``, ``modality``, ``product``, ``target``, ``cell_source`` or ``not_act``.
        term: the vocabulary entry id (term, target or product).
        value: what it signals: a modality, a target's normalised name, a cell source, or ``ACT``.
        field: where: ``title``, ``brief_summary``, ``interventions[0].name``, ``conditions[2]``,
            ``eligibility (inclusion)``...
        phrase: the text matched, as written in the record.
        weight: the vote it cast (weight x field factor; 0 when it only refines or is ignored).
    """

    kind: EvidenceKind
    term: str
    value: str
    field: str
    phrase: str
    weight: float = 0.0


class ActClassification(_Strict):
    """The ACT classification of one trial.

    Attributes:
        is_act: an adoptive cell therapy trial, recognised from its descriptive fields.
        modality: CAR-T, TCR-T, TIL, CAR-NK/NK or other cell therapy; None when not ACT.
        targets: normalised target antigen names (``CD19``, ``BCMA``, ``MAGE-A4``...), in the order
            found; empty when none is named (TIL, unnamed targets) or not ACT.
        cell_source: ``autologous``, ``allogeneic``, or ``unknown`` when the record does not say
            (always ``unknown`` when not ACT).
        evidence: the phrases that decided it, and where they are.
        vocabulary_version: the ``version`` of the vocabulary file used.
    """

    is_act: bool
    modality: Modality | None = None
    targets: tuple[str, ...] = ()
    cell_source: CellSource = "unknown"
    evidence: tuple[Evidence, ...] = ()
    vocabulary_version: str = ""


# --------------------------------------------------------------------------------------------
# Compiled vocabulary
# --------------------------------------------------------------------------------------------

_SEPARATOR = r"[\s\-‐‑–—]+"


def phrase_regex(phrase: str, *, whole_words: bool = True) -> str:
    """The regex of a literal phrase: words in order, any run of spaces/hyphens between, whole words.

    Args:
        phrase: the phrase as written in the vocabulary.
        whole_words: anchor the phrase at word boundaries (``\\b``) at both ends.

    Example:
        >>> pattern = re.compile(phrase_regex("CAR T"))
        >>> bool(pattern.search("CAR-T cells")), bool(pattern.search("CART"))
        (True, False)
    """
    tokens = [t for t in re.split(r"[\s\-‐‑–—]+", phrase.strip()) if t]
    body = _SEPARATOR.join(re.escape(t) for t in tokens)
    start = r"\b" if whole_words and tokens and re.match(r"\w", tokens[0]) else ""
    end = r"\b" if whole_words and tokens and re.search(r"\w$", tokens[-1]) else ""
    return f"{start}{body}{end}"


@dataclass(frozen=True)
class _CompiledTerm:
    entry_id: str
    kind: EvidenceKind
    pattern: re.Pattern[str]
    fields: frozenset[str]
    weight: float
    modality: Modality | None
    cell_source: Literal["autologous", "allogeneic"] | None
    establishes_act: bool
    blocked: re.Pattern[str] | None
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vocabulary:
    """The vocabulary file, validated and compiled (what :func:`classify` uses)."""

    file: VocabularyFile
    terms: tuple[_CompiledTerm, ...]
    targets: tuple[_CompiledTerm, ...]
    products: tuple[_CompiledTerm, ...]
    prior_before: re.Pattern[str]
    prior_list_before: re.Pattern[str]
    prior_after: re.Pattern[str]
    negated_after: re.Pattern[str]
    directed_after: re.Pattern[str]
    directed_after_anti: re.Pattern[str]
    directed_before: re.Pattern[str]
    directed_blocked: re.Pattern[str]
    target_index: re.Pattern[str]
    product_index: re.Pattern[str]
    target_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def version(self) -> str:
        """The file's ``version``."""
        return self.file.version

    def modality_entry(self, modality: Modality) -> ModalityEntry:
        """The entry of one modality."""
        for entry in self.file.modalities:
            if entry.id == modality:
                return entry
        raise KeyError(modality)


def _compile(source: str, flags: int, where: str) -> re.Pattern[str]:
    try:
        return re.compile(source, flags)
    except re.error as exc:
        raise DataFileError(f"invalid regular expression: {exc}", where=where) from exc


def _entry_source(entry: _Patterns) -> str:
    return "|".join(f"(?:{p})" for p in [phrase_regex(p) for p in entry.phrases] + list(entry.regex))


# Every match starts at the beginning of a word. Saying so up front, outside the alternation, lets
# the regex engine skip most positions before trying the alternatives (several times faster).
_WORD_START = r"(?=\w)\b"


def _entry_pattern(entry: _Patterns, where: str) -> re.Pattern[str]:
    flags = 0 if entry.case_sensitive else re.IGNORECASE
    for i, part in enumerate(entry.regex):
        _compile(part, flags, f"{where}: regex[{i}]")
    return _compile(f"{_WORD_START}(?:{_entry_source(entry)})", flags, where)


def _index(entries: Sequence[_Patterns], prefix: str, where: str) -> re.Pattern[str]:
    """One regex for many entries (group ``<prefix><i>`` per entry): one pass over the text.

    Used for targets and products, which are many and never overlap in practice; terms keep a
    pattern each because their matches may overlap and each counts.
    """
    parts = []
    for i, entry in enumerate(entries):
        source = _entry_source(entry)
        parts.append(
            f"(?P<{prefix}{i}>(?-i:{source}))" if entry.case_sensitive else f"(?P<{prefix}{i}>{source})"
        )
    return _compile(f"{_WORD_START}(?:{'|'.join(parts)})", re.IGNORECASE, where)


def compile_vocabulary(data: Any, name: str = VOCABULARY_FILE) -> Vocabulary:
    """Validate and compile parsed vocabulary data.

    Args:
        data: the parsed YAML.
        name: the file name, for errors.

    Returns:
        The compiled vocabulary.

    Raises:
        DataFileError: the data does not follow :class:`VocabularyFile`, or a pattern does not compile
            (names the file, the entry and the field).
    """
    try:
        vf = VocabularyFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        entry = _entry_id_at(data, first["loc"])
        where = f"{name}: {entry}: {loc}" if entry else f"{name}: {loc}"
        raise DataFileError(first["msg"], where=where) from exc
    settings = vf.settings
    ci = re.IGNORECASE
    terms: list[_CompiledTerm] = []
    for term in vf.terms:
        where = f"{name}: term {term.id}"
        terms.append(
            _CompiledTerm(
                entry_id=term.id,
                kind=term.kind,
                pattern=_entry_pattern(term, where),
                fields=frozenset(term.fields or _DEFAULT_TERM_FIELDS),
                weight=term.weight,
                modality=term.modality,
                cell_source=term.cell_source,
                establishes_act=term.establishes_act and term.kind != "cell_source",
                blocked=_compile(term.blocked_in_sentence, ci, f"{where}: blocked_in_sentence")
                if term.blocked_in_sentence
                else None,
            )
        )
    targets = tuple(
        _CompiledTerm(
            entry_id=t.id,
            kind="target",
            pattern=_entry_pattern(t, f"{name}: target {t.id}"),
            fields=frozenset(_TARGET_FIELDS),
            weight=settings.target_default_weight,
            modality=t.default_modality,
            cell_source=None,
            establishes_act=False,
            blocked=None,
        )
        for t in vf.targets
    )
    products = tuple(
        _CompiledTerm(
            entry_id=p.id,
            kind="product" if p.modality is not None else "not_act",
            pattern=_entry_pattern(p, f"{name}: product {p.id}"),
            fields=frozenset(_DEFAULT_TERM_FIELDS),
            weight=4.0,
            modality=p.modality,
            cell_source=p.cell_source,
            establishes_act=p.modality is not None,
            blocked=None,
            targets=p.targets,
        )
        for p in vf.products
    )
    connectors = sorted(settings.target_directed_connectors, key=len, reverse=True)
    connector_re = "|".join(phrase_regex(c, whole_words=False) for c in connectors)
    cells = settings.target_directed_cells
    s = f"{name}: settings"
    return Vocabulary(
        file=vf,
        terms=tuple(terms),
        targets=targets,
        products=products,
        prior_before=_compile(
            rf"(?:^|\W)(?:{settings.prior_context_before})\W+(?:[\w-]+\W+){{0,3}}$",
            ci,
            f"{s}: prior_context_before",
        ),
        prior_list_before=_compile(
            rf"(?:^|\W)(?:{settings.prior_list_context_before})\W+(?:[\w/+-]+(?:\s*,\s*|\s+(?:and|or)\s+|\s+)){{0,6}}$",
            ci,
            f"{s}: prior_list_context_before",
        ),
        prior_after=_compile(settings.prior_context_after, ci, f"{s}: prior_context_after"),
        negated_after=_compile(settings.negated_target_after, ci, f"{s}: negated_target_after"),
        directed_after=_compile(
            rf"^[\s\-]*(?:{connector_re})[\s\-]*{cells}\b(?![\s\-]*(?:lymphoma|leukemia|leukaemia|neoplasm))",
            ci,
            f"{s}: target_directed_connectors",
        ),
        directed_after_anti=_compile(
            rf"^[\s\-]*(?:{connector_re})[\s\-]*(?:cells|CAR[\s\-]*cells)\b",
            ci,
            f"{s}: target_directed_cells",
        ),
        directed_before=_compile(
            rf"{cells}\s+(?:[\w-]+\s+){{0,3}}?{settings.target_directed_verbs}\s+(?:the\s+)?(?:[\w-]+\s+){{0,4}}?$",
            ci,
            f"{s}: target_directed_verbs",
        ),
        directed_blocked=_compile(
            settings.target_directed_blocked_in_sentence, ci, f"{s}: target_directed_blocked_in_sentence"
        ),
        target_index=_index(vf.targets, "t", f"{name}: targets"),
        product_index=_index(vf.products, "p", f"{name}: products"),
        target_ids=frozenset(t.id for t in vf.targets),
    )


def _entry_id_at(data: Any, loc: tuple[Any, ...]) -> str | None:
    node = data
    found: str | None = None
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, Mapping) and isinstance(node.get("id"), str):
            found = str(node["id"])
    return found


def _vocabulary_resource() -> Traversable:
    return resources.files("actnav") / "data" / "trials" / VOCABULARY_FILE


def load_vocabulary(path: Path | None = None) -> Vocabulary:
    """Load, validate and compile a vocabulary file (default: the packaged one, cached).

    Args:
        path: another vocabulary file (tests, experiments); None for the packaged file.

    Raises:
        DataFileError: the file cannot be read or is invalid (names file, entry and field).
    """
    if path is None:
        return _packaged_vocabulary()
    return _load(path, path.name)


@cache
def _packaged_vocabulary() -> Vocabulary:
    return _load(_vocabulary_resource(), VOCABULARY_FILE)


def _load(path: Traversable | Path, name: str) -> Vocabulary:
    from actnav.knowledge.loader import read_yaml

    return compile_vocabulary(read_yaml(path, name), name)


# --------------------------------------------------------------------------------------------
# Text preparation
# --------------------------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\([^\w\s])")
_SECTION = re.compile(r"\b(inclusion|exclusion)(?:\s+criteria\b|\s*:)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?;\n](?=\s|$)|\n")
_CLAUSE_BREAK = re.compile(r"[.!?;:,\n()\[\]]")
_COMPOUND = re.compile(
    r"(?=[4C])(?<![A-Za-z0-9])(?:4S)?(CD|CAR[\s\-]?T?|CART)[\s\-]?(\d{1,3})((?:\s*/\s*(?:CD)?\d{1,3})+)?(?!\d)"
)


@dataclass(frozen=True)
class _Segment:
    group: FieldGroup
    field: str
    text: str


def unescape(text: str) -> str:
    """Remove API v2 markdown escapes (``\\>=`` becomes ``>=``, ``\\*`` becomes ``*``)."""
    return _ESCAPE.sub(r"\1", text)


def inclusion_text(eligibility: str) -> str:
    """The inclusion part of an eligibility text: everything outside "Exclusion criteria" sections.

    Text before the first heading counts as inclusion (records without headings).
    """
    parts: list[str] = []
    keep = True
    pos = 0
    for match in _SECTION.finditer(eligibility):
        if keep:
            parts.append(eligibility[pos : match.start()])
        keep = match.group(1).lower() == "inclusion"
        pos = match.end()
    if keep:
        parts.append(eligibility[pos:])
    return "\n".join(parts)


def _segments(record: TrialRecord) -> Iterator[_Segment]:
    yield _Segment("title", "title", unescape(record.title))
    if record.official_title:
        yield _Segment("title", "official_title", unescape(record.official_title))
    for i, iv in enumerate(record.interventions):
        yield _Segment("interventions", f"interventions[{i}].name", unescape(iv.name))
        if iv.description:
            yield _Segment("interventions", f"interventions[{i}].description", unescape(iv.description))
        for j, other in enumerate(iv.other_names):
            yield _Segment("interventions", f"interventions[{i}].other_names[{j}]", unescape(other))
    for i, kw in enumerate(record.keywords):
        yield _Segment("keywords", f"keywords[{i}]", unescape(kw))
    if record.brief_summary:
        yield _Segment("summary", "brief_summary", unescape(record.brief_summary))
    for i, cond in enumerate(record.conditions):
        yield _Segment("conditions", f"conditions[{i}]", unescape(cond))
    if record.eligibility_text:
        yield _Segment(
            "criteria", "eligibility (inclusion)", inclusion_text(unescape(record.eligibility_text))
        )


def _sentence(text: str, start: int, end: int) -> str:
    left = 0
    for m in _SENTENCE_END.finditer(text, 0, start):
        left = m.end()
    right_match = _SENTENCE_END.search(text, end)
    right = right_match.start() if right_match else len(text)
    return text[left:right]


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------


@dataclass
class _Hit:
    kind: EvidenceKind
    entry: str
    value: str
    group: FieldGroup
    field: str
    phrase: str
    start: int
    weight: float
    establishes_act: bool = False
    modality: Modality | None = None
    cell_source: Literal["autologous", "allogeneic"] | None = None
    targets: tuple[str, ...] = ()


def _is_prior(vocab: Vocabulary, text: str, start: int, end: int) -> bool:
    """Whether a match is named as a prior, other or excluded therapy rather than the trial's own."""
    sentence_window = text[max(0, start - 120) : start]
    ends = list(_SENTENCE_END.finditer(sentence_window))
    if ends:
        sentence_window = sentence_window[ends[-1].end() :]
    clause_window = sentence_window
    breaks = list(_CLAUSE_BREAK.finditer(clause_window))
    if breaks:
        clause_window = clause_window[breaks[-1].end() :]
    if vocab.prior_before.search(" " + clause_window):
        return True
    # "such as CD22, CD20 and CD123": a list after the cue runs across commas.
    if vocab.prior_list_before.search(" " + sentence_window.replace("(", " ")):
        return True
    return bool(vocab.prior_after.search(text[end : end + 60]))


ALL_KINDS: frozenset[str] = frozenset({"act", "modality", "cell_source", "product", "not_act", "target"})


def _scan(vocab: Vocabulary, seg: _Segment, factor: float, kinds: frozenset[str] = ALL_KINDS) -> list[_Hit]:
    """Every counted match of the wanted kinds in one field."""
    hits: list[_Hit] = []
    text = seg.text
    for term in vocab.terms:
        if term.kind not in kinds or seg.group not in term.fields:
            continue
        for m in term.pattern.finditer(text):
            hit = _term_hit(vocab, term, seg, m.start(), m.end(), factor)
            if hit is not None:
                hits.append(hit)
    if kinds & {"product", "not_act"} and seg.group in _DEFAULT_TERM_FIELDS:
        for m in vocab.product_index.finditer(text):
            product = vocab.products[int((m.lastgroup or "p0")[1:])]
            hit = _term_hit(vocab, product, seg, m.start(), m.end(), factor)
            if hit is not None:
                hits.append(hit)
    if "target" in kinds:
        hits.extend(_scan_targets(vocab, seg, factor))
    return hits


def _term_hit(
    vocab: Vocabulary, term: _CompiledTerm, seg: _Segment, start: int, end: int, factor: float
) -> _Hit | None:
    text = seg.text
    if _is_prior(vocab, text, start, end):
        return None
    if term.blocked is not None and term.blocked.search(_sentence(text, start, end)):
        return None
    value = term.modality or term.cell_source or ("not ACT" if term.kind == "not_act" else "ACT")
    return _Hit(
        kind=term.kind,
        entry=term.entry_id,
        value=value,
        group=seg.group,
        field=seg.field,
        phrase=text[start:end],
        start=start,
        weight=term.weight * factor,
        establishes_act=term.establishes_act,
        modality=term.modality,
        cell_source=term.cell_source,
        targets=term.targets,
    )


def _scan_targets(vocab: Vocabulary, seg: _Segment, factor: float) -> list[_Hit]:
    text = seg.text
    found: list[tuple[str, Modality | None, int, int]] = []
    for m in vocab.target_index.finditer(text):
        target = vocab.targets[int((m.lastgroup or "t0")[1:])]
        found.append((target.entry_id, target.modality, m.start(), m.end()))
    defaults = {t.entry_id: t.modality for t in vocab.targets}
    for m in _COMPOUND.finditer(text):
        numbers = [m.group(2), *re.findall(r"\d{1,3}", m.group(3) or "")]
        is_car = not m.group(1).upper().startswith("CD")
        for position, number in enumerate(numbers):
            target_id = f"CD{int(number)}"
            if target_id not in vocab.target_ids or (position == 0 and not is_car):
                continue  # a lone "CD19" is found by the target's own pattern
            found.append((target_id, defaults.get(target_id), m.start(), m.end()))
    hits: list[_Hit] = []
    seen: set[tuple[str, int]] = set()
    for target_id, modality, start, end in sorted(found, key=lambda f: f[2]):
        if (target_id, start) in seen:
            continue
        seen.add((target_id, start))
        if _is_prior(vocab, text, start, end) or vocab.negated_after.search(text[end : end + 20]):
            continue
        hits.append(
            _Hit(
                kind="target",
                entry=target_id,
                value=target_id,
                group=seg.group,
                field=seg.field,
                phrase=text[start:end],
                start=start,
                weight=vocab.file.settings.target_default_weight * factor,
                modality=modality,
            )
        )
        directed = _directed_phrase(vocab, text, start, end)
        if directed is not None and seg.group != "conditions":
            hits.append(
                _Hit(
                    kind="act",
                    entry="target-directed-cells",
                    value="ACT",
                    group=seg.group,
                    field=seg.field,
                    phrase=directed,
                    start=start,
                    weight=vocab.file.settings.target_directed_weight * factor,
                    establishes_act=True,
                )
            )
    return hits


def _directed_phrase(vocab: Vocabulary, text: str, start: int, end: int) -> str | None:
    """``CD19-specific T cells``, ``anti-HER2 cells``, ``T cells targeting BCMA``, or None."""
    sentence = _sentence(text, start, end)
    if vocab.directed_blocked.search(sentence):
        return None
    after = text[end : end + 60]
    m = vocab.directed_after.match(after)
    if m is None and re.search(r"anti[\s\-]*$", text[max(0, start - 6) : start], re.IGNORECASE):
        m = vocab.directed_after_anti.match(after)
    if m is not None:
        return text[start : end + m.end()]
    before = text[max(0, start - 140) : start]
    b = vocab.directed_before.search(before)
    if b is not None:
        return before[b.start() :] + text[start:end]
    return None


# --------------------------------------------------------------------------------------------
# Decision
# --------------------------------------------------------------------------------------------


def classify(record: TrialRecord, vocabulary: Vocabulary | None = None) -> ActClassification:
    """Classify one trial record as ACT or not, with modality, targets and cell source.

    Args:
        record: the normalised trial record.
        vocabulary: the vocabulary to use (default: the packaged ``act-vocabulary.yaml``).

    Returns:
        The classification with its evidence. Not ACT: ``modality`` None, no targets, cell source
        ``unknown``; the evidence then lists what was seen in the descriptive fields but did not
        make the trial ACT (the eligibility text of a non-ACT trial is not read).

    Raises:
        DataFileError: the packaged vocabulary is invalid (a broken installation).
    """
    vocab = vocabulary or load_vocabulary()
    factors = vocab.file.settings.field_factor
    hits: list[_Hit] = []
    criteria: list[_Segment] = []
    for seg in _segments(record):
        if seg.group == "criteria":
            criteria.append(seg)  # read below, only for what the descriptive fields leave open
            continue
        hits.extend(_scan(vocab, seg, factors.get(seg.group, 0.0)))

    if not any(h.establishes_act and h.group in DESCRIPTIVE for h in hits):
        seen = [h for h in hits if h.kind != "target"]  # what was seen but did not count
        return ActClassification(
            is_act=False, evidence=_evidence(seen, counted=False), vocabulary_version=vocab.version
        )

    # The inclusion criteria refine only what the descriptive fields leave open (and they are the
    # longest text of a record, so they are not read when nothing is open).
    modality = _modality(hits)
    targets = _targets(hits, modality) if modality is not None else ()
    source = _cell_source(vocab, hits, modality) if modality is not None else "unknown"
    kinds: set[str] = set()
    if modality is None:
        kinds |= {"act", "modality", "product", "target"}
    if not targets:
        kinds.add("target")
    if source == "unknown":
        kinds |= {"cell_source", "product", "act"}
    if kinds and criteria:
        for seg in criteria:
            hits.extend(_scan(vocab, seg, factors.get(seg.group, 0.0), frozenset(kinds)))
        modality = modality or _modality(hits)
    final: Modality = modality or "other cell therapy"
    return ActClassification(
        is_act=True,
        modality=final,
        targets=targets or _targets(hits, final),
        cell_source=source if source != "unknown" else _cell_source(vocab, hits, final),
        evidence=_evidence(hits, counted=True),
        vocabulary_version=vocab.version,
    )


def _modality(hits: list[_Hit]) -> Modality | None:
    """The modality with the highest vote (ties: the order of MODALITIES), or None without votes."""
    scores: dict[Modality, float] = dict.fromkeys(MODALITIES, 0.0)
    for h in hits:
        if h.modality is not None and h.kind in ("act", "modality", "product", "target"):
            scores[h.modality] += h.weight
    best = max(MODALITIES, key=lambda mod: (scores[mod], -MODALITIES.index(mod)))
    return best if scores[best] > 0 else None


def _targets(hits: list[_Hit], modality: Modality) -> tuple[str, ...]:
    # A named product's targets rank with the title's: "JCAR017" settles CD19 whatever else is named.
    product_targets = [t for h in hits if h.kind == "product" and h.group in DESCRIPTIVE for t in h.targets]
    target_hits = [h for h in hits if h.kind == "target"]
    tiers = [_TIER_A] if modality == "TIL" else [_TIER_A, _TIER_B, frozenset({"criteria"})]
    chosen: list[str] = list(product_targets)
    for tier in tiers:
        chosen += [h.value for h in target_hits if h.group in tier]
        if chosen:
            break
    return tuple(dict.fromkeys(chosen))


def _cell_source(vocab: Vocabulary, hits: list[_Hit], modality: Modality) -> CellSource:
    score = {"autologous": 0.0, "allogeneic": 0.0}
    for h in hits:
        if h.cell_source is not None:
            score[h.cell_source] += h.weight
    default = vocab.modality_entry(modality).default_cell_source
    if default is not None:
        score[default] += 1.0
    if score["autologous"] > score["allogeneic"]:
        return "autologous"
    if score["allogeneic"] > score["autologous"]:
        return "allogeneic"
    return "unknown"


def _evidence(hits: list[_Hit], *, counted: bool) -> tuple[Evidence, ...]:
    out: list[Evidence] = []
    seen: set[tuple[str, str, str, str]] = set()
    for h in hits:
        key = (h.kind, h.entry, h.field, h.phrase.lower())
        if key in seen:
            continue
        seen.add(key)
        out.append(
            Evidence(
                kind=h.kind,
                term=h.entry,
                value=h.value,
                field=h.field,
                phrase=" ".join(h.phrase.split()),
                weight=round(h.weight, 3) if counted else 0.0,
            )
        )
    return tuple(out)
