"""The medspacy pipeline that reads notes: sentences, target rules, ConText.

One spaCy pipeline (blank English, no model download) with medspacy's PyRuSH sentence splitter (and a
sentence start after a full stop before a capital, :func:`_sentence_ends`), a
target matcher loaded from every rule file under ``data/notes/targets/`` plus the diagnosis words of
``data/notes/conditions.yaml``, the agents and regimens of ``terminology/drugs.yaml`` (component
``actnav_drug_mentions``: label ``therapy``, metadata ``concept`` the agent or regimen, ``agents``,
``regimen``) and ConText with medspacy's default rules plus ``data/notes/context.yaml``. Each matched span (``doc.ents``) carries its kind as
the label (a :data:`~actnav.patient.notes.model.FactKind`), the rule's ``concept`` and ``value`` in
``ent._.target_rule.metadata``, and ConText's ``is_negated``, ``is_historical``, ``is_family``,
``is_hypothetical`` and ``is_uncertain``.

Target rule files (YAML, one model :class:`TargetRulesFile`)::

    version: 1
    source: where the terms come from
    rules:
      - literal: multiple myeloma          # the phrase (case-insensitive when no pattern)
        kind: diagnosis                    # a FactKind
        concept: multiple_myeloma          # optional: the actnav key
        value: null                        # optional: a value in words (female, allogeneic)
        pattern: null                      # optional: a regex or a spaCy token pattern
        source: ...                        # optional: the rule's own source
"""

from __future__ import annotations

import re
import warnings
from functools import cache
from re import Pattern
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import compile_suffix_regex

from actnav.knowledge.loader import data_root, load_data
from actnav.patient.notes.model import FactKind

TARGETS_DIR = "notes/targets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetRuleDef(_Strict):
    literal: str = Field(min_length=1)
    kind: FactKind
    concept: str | None = None
    value: str | None = None
    pattern: str | list[dict[str, Any]] | None = None
    source: str | None = None


class TargetRulesFile(_Strict):
    version: int
    source: str
    rules: tuple[TargetRuleDef, ...]


class ContextRuleDef(_Strict):
    literal: str = Field(min_length=1)
    category: str
    direction: str = "BIDIRECTIONAL"
    pattern: str | list[dict[str, Any]] | None = None
    max_scope: int | None = None
    #: Fact kinds (target labels) the rule may modify; None: every kind.
    allowed_types: tuple[FactKind, ...] | None = None
    #: Categories of other rules that end this rule's scope (TERMINATE always does).
    terminated_by: tuple[str, ...] | None = None
    source: str | None = None


class ContextRulesFile(_Strict):
    version: int
    source: str
    #: medspacy default ConText rules (by literal) to drop because they mislead on notes.
    disabled_default_rules: tuple[str, ...] = ()
    rules: tuple[ContextRuleDef, ...] = ()


def target_rules() -> list[TargetRuleDef]:
    """Every target rule of ``data/notes/targets/*.yaml`` (files in name order), then the diagnosis
    rules made from ``data/notes/conditions.yaml``.

    Raises:
        DataFileError: a file fails :class:`TargetRulesFile` or the conditions lexicon model.
    """
    from actnav.patient.notes.conditions import lexicon_rules

    out: list[TargetRuleDef] = []
    folder = data_root() / "notes" / "targets"
    for path in sorted((p for p in folder.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name):
        out.extend(load_data(TargetRulesFile, f"{TARGETS_DIR}/{path.name}").rules)
    out.extend(lexicon_rules())
    return out


def context_rules() -> ContextRulesFile:
    """``data/notes/context.yaml``: the ConText rules added to (and the defaults dropped from)
    medspacy's. Raises DataFileError when invalid."""
    return load_data(ContextRulesFile, "notes/context.yaml")


@Language.component("actnav_drug_mentions")
def _drug_mentions(doc: Doc) -> Doc:
    """Add the agents and regimens of drugs.yaml named in the note as ``therapy`` entities.

    A mention overlapping an entity the target rules already found is left to that rule.
    """
    from medspacy.target_matcher import TargetRule  # type: ignore[import-untyped]

    from actnav.patient.terminology import drug_mentions

    ents = list(doc.ents)
    taken = [(e.start_char, e.end_char) for e in ents]
    for m in drug_mentions(doc.text):
        if any(m.start < end and start < m.end for start, end in taken):
            continue
        span = doc.char_span(m.start, m.end, label="therapy", alignment_mode="expand")
        if span is None or any(span.start_char < end and start < span.end_char for start, end in taken):
            continue
        concept = m.regimen or m.agents[0]
        span._.target_rule = TargetRule(
            concept,
            "therapy",
            metadata={"concept": concept, "value": None, "agents": m.agents, "regimen": m.regimen},
        )
        ents.append(span)
        taken.append((span.start_char, span.end_char))
    doc.ents = sorted(ents, key=lambda e: e.start)
    return doc


#: A capital letter and a full stop kept as one token by spaCy's English exceptions ("B.").
_INITIAL = re.compile(r"[A-Za-z]\.")


def _split_initial_full_stops(nlp: Language) -> None:
    """Make "hepatitis B." and "CAR-T." end in a separate full-stop token.

    Why: spaCy keeps a single letter and its full stop as one token (an initial, "J. Smith"), so
    an entity ending a sentence took the full stop with it and the sentence boundary after it
    could not be set; notes name people rarely and diseases and therapies ending in a capital
    often (hepatitis B, CAR-T, IgA kappa type B).
    """
    tokenizer: Any = nlp.tokenizer
    tokenizer.rules = {k: v for k, v in tokenizer.rules.items() if not _INITIAL.fullmatch(k)}
    suffixes: list[str | Pattern[str]] = [*(nlp.Defaults.suffixes or ()), r"(?<=[A-Z])\."]
    tokenizer.suffix_search = compile_suffix_regex(suffixes).search


@Language.component("actnav_sentence_ends")
def _sentence_ends(doc: Doc) -> Doc:
    """Start a sentence after a full stop, question or exclamation mark followed by a capital.

    Why: PyRuSH reads "B. Mother" or "CAR-T. Hypothyroidism?" as an initial inside one sentence,
    and ConText scopes run to the sentence's end, so "Denies hepatitis B. Mother had breast
    cancer." negated the mother's cancer. Abbreviations such as "Dr." stay one token and are not
    split here.
    """
    for token in doc[:-1]:
        following = doc[token.i + 1]
        if token.text in {".", "?", "!"} and following.text[:1].isupper():
            following.is_sent_start = True
    return doc


@cache
def note_nlp() -> Language:
    """The shared pipeline (built once per process; about a second)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import spacy
        from medspacy.context import ConText, ConTextRule  # type: ignore[import-untyped]  # noqa: F401
        from medspacy.target_matcher import TargetRule

        _quiet_pyrush()
        nlp = spacy.blank("en")
        _split_initial_full_stops(nlp)
        nlp.add_pipe("medspacy_pyrush")
        nlp.add_pipe("actnav_sentence_ends")
        matcher: Any = nlp.add_pipe("medspacy_target_matcher")
        matcher.add(
            [
                TargetRule(
                    r.literal,
                    r.kind,
                    pattern=r.pattern,
                    metadata={"concept": r.concept, "value": r.value},
                )
                for r in target_rules()
            ]
        )
        nlp.add_pipe("actnav_drug_mentions")
        context = context_rules()
        ctx: Any = nlp.add_pipe("medspacy_context", config={"rules": None})
        disabled = {literal.lower() for literal in context.disabled_default_rules}
        defaults = ConTextRule.from_json(ctx.DEFAULT_RULES_FILEPATH)
        ctx.add([r for r in defaults if r.literal.lower() not in disabled])
        ctx.add(
            [
                ConTextRule(
                    r.literal,
                    r.category,
                    pattern=r.pattern,
                    direction=r.direction,
                    max_scope=r.max_scope,
                    allowed_types=set(r.allowed_types) if r.allowed_types is not None else None,
                    terminated_by=set(r.terminated_by) if r.terminated_by is not None else None,
                )
                for r in context.rules
            ]
        )
    return nlp


def _quiet_pyrush() -> None:
    """PyRuSH logs every token at DEBUG through loguru; notes must never reach a log."""
    try:
        from loguru import logger

        logger.disable("PyRuSH")
    except ImportError:  # pragma: no cover - loguru comes with PyRuSH
        pass


def note_doc(text: str) -> Doc:
    """Run the pipeline over a note: sentences, ``doc.ents`` with ConText attributes."""
    nlp = note_nlp()
    with warnings.catch_warnings():
        # spaCy warns (W036) when one of medspacy's inner matchers has no pattern of its kind.
        warnings.filterwarnings("ignore", message=r"\[W036\]")
        return nlp(text)


def flags(ent: Span) -> dict[str, bool]:
    """The ConText modifiers of a matched span, as the keyword arguments of
    :class:`~actnav.patient.notes.model.NoteFact` (negated, historical, family, hypothetical, uncertain)."""
    return {
        "negated": bool(ent._.is_negated),
        "historical": bool(ent._.is_historical),
        "family": bool(ent._.is_family),
        "hypothetical": bool(ent._.is_hypothetical),
        "uncertain": bool(ent._.is_uncertain),
    }
