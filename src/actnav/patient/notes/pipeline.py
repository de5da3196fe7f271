"""The medspacy pipeline that reads notes: sentences, target rules, ConText.

One spaCy pipeline (blank English, no model download) with medspacy's PyRuSH sentence splitter, a
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

import warnings
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from spacy.language import Language
from spacy.tokens import Doc, Span

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
        nlp.add_pipe("medspacy_pyrush")
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
                    r.literal, r.category, pattern=r.pattern, direction=r.direction, max_scope=r.max_scope
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
