"""Turn one eligibility criterion into a typed criterion tree, or mark it for review.

A criterion (:class:`~actnav.trials.criteria_text.CriterionText`) becomes a
:class:`~actnav.knowledge.models.Criterion` tree of the same kind as the product labels use, so the
three-valued engine evaluates trials and labels alike:

* Leaves name facts of ``facts.yaml`` or of ``data/trials/trial-facts.yaml``; numbers are converted
  to the fact's canonical UCUM unit with pint ("ANC ≥ 1000/µL" -> ``anc ge 1.0 10*9/L``).
* Exclusion criteria are negated: "ANC < 1000/uL" becomes ``not (anc lt 1.0 10*9/L)``; several
  typed parts of one exclusion exclude on their own (``not any_of``).
* What is not understood becomes a leaf on ``needs_review`` (never resolvable: always unknown),
  carrying the original text, so nothing is dropped and nothing is silently met. A criterion that is
  only partly typed keeps its typed parts where that is sound (an inclusion requirement is still
  required; an exclusion part excludes only when its clause was fully read) next to the review leaf.
* Negation, hedging and conditions ("no", "negative for", "unless", "except", "if", "for patients
  with", "at the discretion of") are read with medspacy's ConText over the typed spans plus the
  rules of ``parse-rules.yaml``. A hedged or conditional criterion goes to review whole, with the
  partial parse kept as a note: a wrong hard rule is worse than an open question.

The rules (analyte names, unit spellings, comparator phrases, performance-status conversions with
their source) are data: ``data/trials/parse-rules.yaml``, validated on load.
"""

from __future__ import annotations

import importlib
import itertools
import math
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from actnav.knowledge.loader import data_root, load_data, parse_file, read_yaml
from actnav.knowledge.models import Criterion, FactCatalogue, Operator, Reference, Scalar, SourceRef
from actnav.trials.criteria_text import CriterionText

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Span

__all__ = [
    "LeafSpan",
    "ParseRules",
    "ParsedCriterion",
    "Threshold",
    "find_thresholds",
    "load_rules",
    "parse_criteria",
    "parse_criterion",
    "to_canonical",
    "trial_facts",
]

NEEDS_REVIEW = "needs_review"
Status = Literal["typed", "partial", "review"]
Cmp = Literal["ge", "le", "gt", "lt", "eq", "between"]


# --- rule file schema ----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComparatorRule(_Strict):
    op: Literal["ge", "le", "gt", "lt", "eq"]
    patterns: tuple[str, ...]


class UnitDef(_Strict):
    ucum: str
    pint: str


class UnitAlias(_Strict):
    ucum: str
    pattern: str


class AnalyteRule(_Strict):
    fact: str
    names: tuple[str, ...]
    plausible: tuple[float, float]
    bare_units: tuple[str, ...] = ()
    molar_mass: float | None = Field(default=None, description="g/mol, for mass <-> substance.")
    uln_only: bool = False


class PsBand(_Strict):
    ecog: int
    karnofsky_min: int
    karnofsky_max: int


class PerformanceRules(_Strict):
    ecog_names: tuple[str, ...]
    karnofsky_names: tuple[str, ...]
    lansky_names: tuple[str, ...]
    generic_names: tuple[str, ...]
    ecog_karnofsky: tuple[PsBand, ...]
    source: SourceRef


class LeafSpec(_Strict):
    fact: str
    op: Operator
    value: Scalar


class ConceptRule(_Strict):
    id: str
    names: tuple[str, ...]
    present: LeafSpec
    absent: LeafSpec
    exclusion_only: bool = False
    inclusion_only: bool = False


class TherapyRule(_Strict):
    fact: Literal["prior_drug_classes", "prior_transplant"]
    code: str
    names: tuple[str, ...]


class WashoutRule(_Strict):
    fact: str
    names: tuple[str, ...]


class DiseaseRule(_Strict):
    concept: str
    names: tuple[str, ...]


class AntigenRules(_Strict):
    fact: str
    names: dict[str, tuple[str, ...]]
    positive: tuple[str, ...]


class SexRules(_Strict):
    female: tuple[str, ...]
    male: tuple[str, ...]
    any: tuple[str, ...]


class ContextRuleDef(_Strict):
    literal: str
    category: Literal["CONDITION", "HEDGE", "NEGATED_EXISTENCE"]
    direction: Literal["FORWARD", "BACKWARD", "BIDIRECTIONAL", "PSEUDO"] = "BIDIRECTIONAL"


class ParseRules(_Strict):
    """``data/trials/parse-rules.yaml``."""

    schema_version: Literal[1] = 1
    version: str
    references: dict[str, Reference]
    comparators: tuple[ComparatorRule, ...]
    postfix_comparators: tuple[ComparatorRule, ...]
    range_joiners: tuple[str, ...]
    units: tuple[UnitDef, ...]
    unit_aliases: tuple[UnitAlias, ...]
    analytes: tuple[AnalyteRule, ...]
    performance: PerformanceRules
    concepts: tuple[ConceptRule, ...]
    therapies: tuple[TherapyRule, ...]
    washouts: tuple[WashoutRule, ...]
    diseases: tuple[DiseaseRule, ...]
    antigens: AntigenRules
    sex: SexRules
    filler_words: tuple[str, ...]
    context_rules: tuple[ContextRuleDef, ...]
    alternative_parent_cues: tuple[str, ...]
    disabled_default_context_rules: tuple[str, ...] = ()


@cache
def load_rules() -> ParseRules:
    """The parse rules, validated (cached per process).

    Raises:
        DataFileError: the file is unreadable or fails its schema.
    """
    return load_data(ParseRules, "trials/parse-rules.yaml")


@cache
def trial_facts() -> FactCatalogue:
    """The trial fact catalogue (``data/trials/trial-facts.yaml``)."""
    name = "trials/trial-facts.yaml"
    return parse_file(FactCatalogue, read_yaml(data_root() / "trials" / "trial-facts.yaml", name), name)


@cache
def _fact_units() -> dict[str, str | None]:
    """Canonical unit of every fact a parsed leaf may name (facts.yaml + trial-facts.yaml)."""
    base = parse_file(FactCatalogue, read_yaml(data_root() / "facts.yaml"), "facts.yaml")
    units = {f.id: f.unit for f in base.facts}
    units.update({f.id: f.unit for f in trial_facts().facts})
    return units


# --- compiled patterns ---------------------------------------------------------------------------

_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_NUM = (
    r"(?<![\w.,/^*])(?<!\d:)(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?![\d])"
    r"|\b(?:" + "|".join(_NUMBER_WORDS) + r")\b"
)
_TIME_UNITS = {"a", "mo", "wk", "d", "h", "min"}
_DOSE_UNITS = {"mg/kg", "mg/d", "mg/m2", "mg", "g/d", "Gy"}
_ORDINAL_BEFORE = re.compile(
    r"\b(?:grade|grades|stage|stages|class|type|phase|step|cycle|cycles|day|part|cohort|version|section|item|"
    r"visit|trial|CTCAE|NYHA|v|version|level|tier|category|figure|table|n)\s*$",
    re.IGNORECASE,
)
_TEMPORAL_LEFT = re.compile(
    r"(?:\bwithin|\bin\s+the\s+(?:last|past|previous|preceding)|\bduring\s+the\s+(?:last|past)|\blast|\bpast|"
    r"\bfor|\bprevious|\bpreceding|\bover\s+the\s+(?:last|past))\s+(?:the\s+)?(?:\S+\s+){0,2}$",
    re.IGNORECASE,
)
_TEMPORAL_RIGHT = re.compile(
    r"^\s*(?:\)|,)?\s*(?:(?:or\s+(?:more|less|longer|greater))\s+)?(?:prior|before|after|since|ago|from|following|"
    r"preceding|of\s+(?:the\s+)?(?:start|first|initiation|enrol|study|screening|registration|randomi|"
    r"treatment|infusion|day|last|leukapheresis|apheresis|lymphodepl|cell|protocol|consent)|"
    r"(?:have|has|must)\s+(?:have\s+)?elapsed|apart|duration|in\s+duration|post|earlier|before|previously|"
    r"or\s+(?:5|five)\s+half|"
    # "more than 2 years of handball", "at least 4 years of follow-up": a duration, not an age
    r"of\s+(?!(?:age|old|life|gestation\w*|pregnancy|amenorrh\w*|postmenstrual|corrected)\b)[a-z])",
    re.IGNORECASE,
)
_ENTITY_GAP = re.compile(
    r"^(?:\s|[,:()\[\]]|\b(?:count|counts|level|levels|value|values|of|is|are|was|were|been|be|must|should|at|test|result|"
    r"concentration|measured|by|as|score|status|ps|performance|grade|the|in|serum|plasma|blood|total|absolute|"
    r"institutional|mean|calculated|estimated|using|cockcroft[-\s]*gault|formula|mdrd|ckd-?epi|echo\w*|muga|"
    r"scan|on|room|air|without|with|need|requirement|for|transfusion|support|aged?|years?|old|"
    r"equation|method|per|ml/min|or|and|to|\(.{0,30}?\))\b)*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Compiled:
    prefix: re.Pattern[str]
    prefix_ops: tuple[tuple[re.Pattern[str], Cmp], ...]
    postfix: tuple[tuple[re.Pattern[str], Cmp], ...]
    joiner: re.Pattern[str]
    units: tuple[tuple[re.Pattern[str], str], ...]
    number: re.Pattern[str]
    analytes: tuple[tuple[re.Pattern[str], AnalyteRule], ...]
    ps: tuple[tuple[re.Pattern[str], str], ...]
    concepts: tuple[tuple[re.Pattern[str], ConceptRule], ...]
    therapies: tuple[tuple[re.Pattern[str], TherapyRule], ...]
    washouts: tuple[tuple[re.Pattern[str], WashoutRule], ...]
    diseases: tuple[tuple[re.Pattern[str], DiseaseRule], ...]
    antigens: tuple[tuple[re.Pattern[str], str], ...]
    antigen_positive_after: re.Pattern[str]
    antigen_positive_before: re.Pattern[str]
    sex_female: tuple[re.Pattern[str], ...]
    sex_male: tuple[re.Pattern[str], ...]
    sex_any: tuple[re.Pattern[str], ...]
    alternative_parent: tuple[re.Pattern[str], ...]
    filler: frozenset[str]


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _alt(patterns: Iterable[str]) -> str:
    return "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"


@cache
def _compiled() -> _Compiled:
    rules = load_rules()
    prefix_ops = tuple((_rx(_alt(r.patterns) + "$"), r.op) for r in rules.comparators)
    all_prefix = _rx(
        r"(?:(?<=\W)|^|(?=[<>=≥≤⩾⩽≧≦＜＞˂˃]))" + _alt(p for r in rules.comparators for p in r.patterns) + "$"
    )
    perf = rules.performance
    ps = (
        *((_rx(p), "ecog") for p in perf.ecog_names),
        *((_rx(p), "karnofsky") for p in perf.karnofsky_names),
        *((_rx(p), "lansky") for p in perf.lansky_names),
        *((_rx(p), "ps") for p in perf.generic_names),
    )
    return _Compiled(
        prefix=all_prefix,
        prefix_ops=prefix_ops,
        postfix=tuple((_rx("^" + _alt(r.patterns)), r.op) for r in rules.postfix_comparators),
        joiner=_rx("^" + _alt(rules.range_joiners)),
        units=tuple((_rx("^" + u.pattern), u.ucum) for u in rules.unit_aliases),
        number=_rx(_NUM),
        analytes=tuple((_rx(_alt(a.names)), a) for a in rules.analytes),
        ps=ps,
        concepts=tuple((_rx(_alt(c.names)), c) for c in rules.concepts),
        therapies=tuple((_rx(_alt(t.names)), t) for t in rules.therapies),
        washouts=tuple((_rx(_alt(w.names)), w) for w in rules.washouts),
        diseases=tuple((_rx(_alt(d.names)), d) for d in rules.diseases),
        antigens=tuple((_rx(_alt(names)), code) for code, names in rules.antigens.names.items()),
        antigen_positive_after=_rx("^" + rules.antigens.positive[0]),
        antigen_positive_before=_rx(rules.antigens.positive[1] + "$"),
        sex_female=tuple(_rx(p) for p in rules.sex.female),
        sex_male=tuple(_rx(p) for p in rules.sex.male),
        sex_any=tuple(_rx(p) for p in rules.sex.any),
        alternative_parent=tuple(_rx(p) for p in rules.alternative_parent_cues),
        filler=frozenset(w.lower() for w in rules.filler_words),
    )


# --- units (pint) --------------------------------------------------------------------------------


@cache
def _registry() -> Any:
    """The pint registry: ``actnav.patient.units`` when it provides one, else our own."""
    try:
        module = importlib.import_module("actnav.patient.units")
    except ImportError:
        module = None
    if module is not None:
        for name in ("ureg", "UREG", "registry", "unit_registry"):
            reg = getattr(module, name, None)
            if callable(reg) and not hasattr(reg, "Quantity"):
                reg = reg()
            if reg is not None and hasattr(reg, "Quantity"):
                return reg
    import pint

    return pint.UnitRegistry()


@cache
def _pint_expr() -> dict[str, str]:
    return {u.ucum: u.pint for u in load_rules().units}


def to_canonical(value: float, unit: str, target: str, molar_mass: float | None = None) -> float | None:
    """Convert a value between UCUM units with pint.

    Args:
        value: the number as written.
        unit: its UCUM unit (from the unit alias table).
        target: the fact's canonical UCUM unit.
        molar_mass: g/mol, to convert between mass and substance concentrations.

    Returns:
        The converted value, or None when the units are not commensurable (or unknown).
    """
    if unit == target:
        return value
    if "{xULN}" in (unit, target) or ("{score}" in (unit, target) and unit != "1"):
        return None
    exprs = _pint_expr()
    if unit not in exprs or target not in exprs:
        return None
    reg = _registry()
    try:
        qty = value * reg.parse_expression(exprs[unit])
        goal = 1 * reg.parse_expression(exprs[target])
        if qty.dimensionality != goal.dimensionality and molar_mass is not None:
            mass = reg.Quantity(molar_mass, "gram / mole")
            qty = qty * mass if "[substance]" in str(qty.dimensionality) else qty / mass
        return float((qty / goal).to("dimensionless").magnitude)
    except Exception:  # pint raises several error types for incommensurable units
        return None


# --- thresholds ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """A comparison found in text: comparator, value(s), unit, and the entity it constrains.

    Attributes:
        op: ge, le, gt, lt, eq, or between (``value`` .. ``value2``).
        value / value2: numbers as written (thousands commas removed, decimal commas read, number
            words read).
        unit: UCUM code of the unit as written (None when absent or not recognised).
        unit_text: the unit as written.
        span: characters of the comparison (comparator, values, unit) in the text.
        entity: the fact (or ``ecog`` / ``karnofsky`` / ``lansky`` / ``ps``) it constrains, if known.
        entity_span: where the entity is named.
        entity_text: the words naming the entity (the nearest noun phrase when no fact is known).
        temporal: a time window or duration ("within 4 weeks", "at least 28 days since").
        extra_entities: further facts sharing the threshold ("ALT and AST ≤ 2.5 x ULN").
        values: every value: one for a plain comparison, the bounds of a range, the members of a
            list (op eq: "0 or 1" is one of them), or a blood-pressure pair under one comparator
            ("< 140/90": systolic, diastolic).
    """

    op: Cmp
    value: float
    value2: float | None
    unit: str | None
    unit_text: str | None
    span: tuple[int, int]
    entity: str | None = None
    entity_span: tuple[int, int] | None = None
    entity_text: str | None = None
    temporal: bool = False
    extra_entities: tuple[tuple[str, tuple[int, int]], ...] = ()
    values: tuple[float, ...] = ()


def _num(text: str) -> float:
    word = _NUMBER_WORDS.get(text.lower())
    if word is not None:
        return float(word)
    return float(text.replace(",", ""))


def _unit_at(text: str, pos: int) -> tuple[str, int, int] | None:
    """A unit starting at ``pos`` (after optional spaces): UCUM code, start, end."""
    j = pos
    while j < len(text) and text[j] == " ":
        j += 1
    rest = text[j:]
    for pattern, ucum in _compiled().units:
        m = pattern.match(rest)
        if m and m.end() > 0:
            return ucum, j, j + m.end()
    return None


def _prefix_op(text: str, pos: int) -> tuple[Cmp, int] | None:
    """The comparator ending at ``pos``: op and its start.

    "over age 18", "younger than the age of 13", "Minimum age: 18": the comparator may be
    separated from the value by the word age (the span then covers it).
    """
    window = text[max(0, pos - 45) : pos]
    comp = _compiled()
    m = comp.prefix.search(window)
    if m is None:
        age = _AGE_WORD_BEFORE.search(window)
        if age is None:
            return None
        found = _prefix_op(text, pos - len(age.group(0)))
        return None if found is None else (found[0], found[1])
    phrase = m.group(0)
    for pattern, op in comp.prefix_ops:
        if pattern.fullmatch(phrase):
            return op, pos - len(phrase)
    return None


_AGE_WORD_BEFORE = re.compile(r"(?<=\s)(?:the\s+)?ages?\s*(?:of\s+)?:?\s*$", re.IGNORECASE)
_TEMPORAL_OP = re.compile(r"within|last|past|previous|preceding", re.IGNORECASE)
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DATE_AFTER = re.compile(r"\s*(?:st|nd|rd|th)?\s*(?:of\s+)?" + _MONTHS + r"\b", re.IGNORECASE)
_DATE_BEFORE = re.compile(r"\b" + _MONTHS + r"\.?\s*(?:\d{1,2}(?:st|nd|rd|th)?,?\s*)?$", re.IGNORECASE)
# "140/90 mmHg": a blood-pressure pair (systolic/diastolic) is one comparison with two values
_PAIR = re.compile(r"\s*/\s*(\d{2,3})(?![\d,/]|\.\d)")
_BP_CONTEXT = re.compile(
    r"blood\s+pressure|\bS?BP\b|hypertens|hypotens|systolic|diastolic|ha?emodynamic|mm\s*hg", re.IGNORECASE
)
# "pain ≥ 4/10", "5 out of 10": a score on a 0-10 (0-100) scale; the value is the score
_SCALE_OF = re.compile(r"\s*(?:/|out\s+of\s+)(10|100)(?![\d,/]|\.\d)", re.IGNORECASE)
# "on a 0-10 scale", "(range 0-21)": the description of a scale, not a threshold
_SCALE_AFTER = re.compile(
    r"\s*%?\s*(?:-?\s*points?\s+)?(?:scale|vas\b|nrs\b|numeric(?:al)?\s+rating|severity|likert)",
    re.IGNORECASE,
)
_SCALE_BEFORE = re.compile(r"(?:\bon\s+an?|\branging|\brange\s*:?|\bfrom)\s*\(?\s*$", re.IGNORECASE)
# words that may follow a bare number in a threshold; any other lower-case word makes it a count
# ("at least two permanent teeth", "more than 3 ED visits")
_COUNT_NOUN = re.compile(
    r"\s+(?!(?:or|and|to|at|in|on|for|with|without|if|of|as|by|but|nor|points?|score|x|times|fold|per|from|"
    r"prior|before|after|during|within|while|when|unless|except|not|than|then|via|is|are|was|were|has|have|"
    r"had|will|must|should|may|which|that|who|where|measured|determined|assessed|calculated|confirmed|"
    r"documented|obtained|using|based|according|defined|despite|corrected|inclusive|exclusive|respectively|"
    r"also|only|each|both|on)\b|[a-z]+(?:ing|ed)\b)[a-z]{3,}"
)
# "at least one of the following", "≥2 of 6 criteria": a count of criteria
_COUNT_OF = re.compile(
    r"\s*(?:\(\d+\)\s*)?of\s+(?:(?:the|these|those|his|her|their)\b|(?:following|above|below|criteria|\d+)\b)",
    re.IGNORECASE,
)
# "> 3 x 30 min": sessions of a given length, not a threshold ("3 times a week" is a count too)
_SESSIONS = re.compile(r"\s*x\s*\d+\s*min", re.IGNORECASE)
# "> 5 cigarettes per day", "≤ 3 bowel movements/week", "2 times a week": a rate, its unit {noun}/period
_RATE = re.compile(
    r"\s*((?:[a-z][a-z'\-]*\s+){0,2}?[a-z][a-z'\-]*?)\s*(?:/|\bper\b|\ban?\b|\beach\b|\bevery\b|\bin\s+an?\b)\s*"
    r"(day|d|week|wk|month|mo|year|yr|occasion|session|night)s?\b",
    re.IGNORECASE,
)
_RATE_PERIOD = {"day": "d", "week": "wk", "month": "mo", "year": "a", "yr": "a"}
_NOT_RATE_NOUN = frozenset(
    {"or", "and", "to", "of", "in", "the", "than", "more", "less", "at", "least", "prior"}
)
# "20 years old", "14-16 year olds", "18 years of age": an age even after "for" or before "from"
_AGE_AFTER = re.compile(r"\s*-?\s*(?:olds?|of\s+age)\b", re.IGNORECASE)
_HYPHEN_TIME_UNITS = {"a", "mo", "wk", "d", "h"}


def _decimal_comma(text: str, end: int, has_op: bool) -> tuple[float, int] | None:
    """A decimal comma after the integer part ending at ``end`` ("≥ 18,5", "< 7,0 mmol/l").

    Only with a comparator before the number or a unit after it, and never in a list ("1,2 or 3").
    """
    m = re.match(r",(\d{1,2})(?![\d,])", text[end : end + 4])
    if m is None:
        return None
    after = end + m.end()
    if re.match(r"\s*(?:,|or\b|and\b|&)\s*\d", text[after : after + 8], re.IGNORECASE):
        return None
    if not has_op and _unit_at(text, after) is None:
        return None
    return float(m.group(1)) / 10 ** len(m.group(1)), after


def _raw_thresholds(text: str) -> Iterator[Threshold]:
    comp = _compiled()
    numbers = list(comp.number.finditer(text))
    used_until = 0
    for i, m in enumerate(numbers):
        if m.start() < used_until:
            continue
        start, end = m.span()
        # numbers glued to letters are identifiers (CD19, HER2, IL-6), not values
        before = text[max(0, start - 2) : start]
        if re.search(r"[A-Za-z]-?$", before) and not re.search(
            r"(?:[<>=≥≤~]|\bx|\bto|\bof|\bor)\s*$", before
        ):
            continue
        if (
            re.match(r"\s*(?:st|nd|rd|th)\b", text[end : end + 4])
            and not text[start:end].isalpha()
            and not re.match(r"(?:st|nd|rd|th)\s+(?:percentile|centile)", text[end : end + 16], re.IGNORECASE)
        ):
            continue
        v1 = _num(m.group(0))
        op_found = _prefix_op(text, start)
        if op_found is None and start > 1 and text[start - 1] in "-−+" and not text[start - 2].isalnum():
            # a signed value after a comparator: "z-score > -3", "MIP < -20 cm H2O", "< +1.5"
            op_found = _prefix_op(text, start - 1)
            if op_found is not None and text[start - 1] != "+":
                v1 = -v1
        op_end = op_found[1] if op_found else start
        explicit = op_found is not None and op_found[0] in ("ge", "gt", "le", "lt")
        if _ORDINAL_BEFORE.search(text[max(0, op_end - 12) : op_end]) and not (
            explicit and not _TEMPORAL_OP.search(text[op_end:start])
        ):
            continue  # "grade 3", "cycle 1 day 1", "n=20" (but "NYHA class ≥ 2" is a threshold)
        if _DATE_AFTER.match(text, end) or _DATE_BEFORE.search(text[max(0, start - 20) : start]):
            continue  # a date ("1st of January 2011", "December 31")
        op: Cmp | None = op_found[0] if op_found else None
        span_start = op_found[1] if op_found else start
        power = re.match(r"\^\s*(\d{1,2})(?!\d)", text[end : end + 5]) if m.group(0) == "10" else None
        if power is not None and not re.match(
            r"\s*(?:cells\s*)?/\s*(?:l|µl|ul|mm)", text[end + power.end() :], re.I
        ):
            v1 = 10.0 ** int(power.group(1))  # "10^3 CFU/mL"
            end += power.end()
        word = re.match(r"\s*\(\s*(\d+)\s*\)", text[end : end + 8]) if m.group(0).isalpha() else None
        if word is not None and float(word.group(1)) == v1:
            end += word.end()  # "one (1) month"
        values: tuple[float, ...] = (v1,)
        unit: tuple[str, int, int] | None = None
        cursor = end
        pair = _PAIR.match(text, end)
        scale = _SCALE_OF.match(text, end)
        if (
            pair
            and 50 <= v1 <= 260
            and 30 <= float(pair.group(1)) < v1
            and _BP_CONTEXT.search(text[max(0, start - 60) : pair.end() + 12])
        ):
            values = (v1, float(pair.group(1)))
            cursor = pair.end()
        elif scale and 0 <= v1 <= float(scale.group(1)):
            unit = ("{score}", scale.start(), scale.end())
            cursor = scale.end()
        elif re.match(r"[/:]\d", text[end : end + 2]):
            continue  # fractions, ratios, times of day
        else:
            dec = _decimal_comma(text, end, op_found is not None)
            if dec is not None:
                v1 = v1 + dec[0] if v1 >= 0 else v1 - dec[0]
                values = (v1,)
                cursor = dec[1]
        if unit is None:
            unit = _unit_at(text, cursor)
            if unit is None and text[cursor : cursor + 1] == "-":
                hyphen = _unit_at(text, cursor + 1)  # "12-month period", "6-mo"
                if hyphen is not None and hyphen[0] in _HYPHEN_TIME_UNITS:
                    unit = hyphen
            cursor = unit[2] if unit else cursor
        v2: float | None = None
        between_prefix = re.search(
            r"\b(?:between|from)\s+(?:the\s+)?(?:ages?\s+(?:of\s+)?)?$",
            text[max(0, start - 25) : start],
            re.IGNORECASE,
        )
        nxt = numbers[i + 1] if i + 1 < len(numbers) else None
        within = op == "le" and bool(_TEMPORAL_OP.search(text[span_start:start]))
        if (
            nxt is not None
            and len(values) == 1
            and (op not in ("ge", "gt", "le", "lt") or between_prefix or within)
        ):
            gap = text[cursor : nxt.start()]
            if unit is not None and unit[0] in _TIME_UNITS:
                # "20 years old to 70 years of age"
                old = re.match(r"\s*(?:old|of\s+age)\b", gap, re.IGNORECASE)
                gap = gap[old.end() :] if old else gap
            joined = comp.joiner.fullmatch(gap) if gap else None
            if (
                joined is None
                and between_prefix
                and re.fullmatch(r"\s*(?:\w+\s+){0,2}?(?:and|to|-|–)\s*", gap, re.IGNORECASE)
            ):
                joined = re.match(r".*", gap)
            if joined is None and unit is None and re.fullmatch(r"\s+and\s+", gap, re.IGNORECASE):
                # "18 and 65 years old": a range when the second value carries an age or time unit
                unit_b = _unit_at(text, nxt.end())
                if (
                    unit_b is not None
                    and unit_b[0] == "a"
                    and re.match(r"\s*(?:old|of\s+age)\b", text[unit_b[2] : unit_b[2] + 8], re.IGNORECASE)
                ):
                    joined = re.match(r".*", gap)
            if joined is not None:
                v2 = _num(nxt.group(0))
                values = (v1, v2)
                unit2 = _unit_at(text, nxt.end())
                if unit2 is not None:
                    unit = unit2
                cursor = unit2[2] if unit2 else nxt.end()
                used_until = cursor
                op = "between"
                if between_prefix:
                    span_start = start - len(between_prefix.group(0))
                if (v1 == 0 and (_SCALE_AFTER.match(text, cursor) or _SCALE_BEFORE.search(text[:start]))) or (
                    unit is None and all(v.is_integer() and 1900 <= v <= 2100 for v in values)
                ):
                    continue  # a scale ("on a 0-10 scale") or calendar years ("between 2008 and 2017")
            elif op is None or op == "eq":
                # "0 or 1", "1, 2 or 3", "0.5 or 1": score lists, one of the values
                lst = re.match(
                    r"((?:\s*,\s*\d+(?:\.\d+)?(?![\d.]))*\s*,?\s*(?:or|and)\s+\d+(?:\.\d+)?(?![\d/]|[.,]\d|\s*[-–]))",
                    text[cursor:],
                )
                nums = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", lst.group(1))] if lst else []
                if lst and unit is None and all(0 <= v <= 10 for v in (v1, *nums)):
                    values = (v1, *nums)
                    op = "eq"
                    cursor += lst.end()
                    used_until = cursor
        single = len(values) == 1 and op != "between"
        bare = unit is None and single
        rate = _RATE.match(text, cursor) if bare or (unit is None and op == "between") else None
        if rate is not None and rate.group(1).lower() in ("times", "time", "x"):
            continue  # "more than 2 times a week": a count of occasions, not a threshold
        if rate is not None and rate.group(1).split()[0].lower() not in _NOT_RATE_NOUN:
            period = rate.group(2).lower()
            unit = (
                "{" + rate.group(1).lower() + "}/" + _RATE_PERIOD.get(period, period),
                rate.start(1),
                rate.end(),
            )
            cursor = rate.end()
            bare = False
        if bare and (_COUNT_OF.match(text, cursor) or _SESSIONS.match(text, cursor)):
            continue  # "at least one of the following", "> 3 x 30 min"
        if bare and (
            _COUNT_NOUN.match(text, cursor)
            or (m.group(0).isalpha() and re.match(r"\s+[a-z]+(?:ing|ed)\b", text[cursor : cursor + 30]))
        ):
            continue  # "at least two permanent teeth", "at least one containing": a count, not a threshold
        if op is None or (op == "eq" and single):
            skip = re.match(r"\s*(?:of\s+age|old|of\s+life)\b", text[cursor:], re.IGNORECASE)
            base = cursor + (skip.end() if skip else 0)
            for pattern, pop in comp.postfix:
                pm = pattern.match(text[base:])
                if pm:
                    if (
                        bare
                        and re.match(r"\s*(?:or|and)\s+(?:more|greater|less|fewer)\b", pm.group(0), re.I)
                        and (
                            _COUNT_NOUN.match(text, base + pm.end()) or _COUNT_OF.match(text, base + pm.end())
                        )
                    ):
                        break  # "two or more prior episodes", "one or more of the following"
                    op = pop
                    cursor = base + pm.end()
                    if bare and pm.group(0).strip() == "+":
                        unit = _unit_at(text, cursor)  # "60+ years"
                        if unit is not None:
                            cursor = unit[2]
                        elif _COUNT_NOUN.match(text, cursor):
                            op = None  # "CD4+ lymphocytes": an identifier, not a threshold
                    break
        if op is None:
            continue
        unit_code = unit[0] if unit else None
        unit_text = text[unit[1] : unit[2]] if unit else None
        if unit_code is not None and op == "between" and v2 is None:
            continue
        left = text[max(0, span_start - 40) : span_start]
        op_text = text[span_start:start]
        temporal = (
            unit_code in _TIME_UNITS
            and not (unit_code == "a" and _AGE_AFTER.match(text, cursor))
            and (
                bool(_TEMPORAL_LEFT.search(left))
                or bool(_TEMPORAL_RIGHT.match(text[cursor : cursor + 40]))
                or bool(_TEMPORAL_OP.search(op_text))
            )
        )
        if unit_code in _DOSE_UNITS:
            continue  # doses are not patient thresholds
        yield Threshold(
            op=op,
            value=v1,
            value2=v2,
            unit=unit_code,
            unit_text=unit_text,
            span=(span_start, cursor),
            temporal=temporal,
            values=values,
        )
        used_until = max(used_until, cursor)


def _entity_mentions(text: str) -> list[tuple[int, int, str]]:
    """All analyte and performance-scale mentions, longest first at each place, without overlaps."""
    comp = _compiled()
    found: list[tuple[int, int, str]] = []
    for pattern, rule in comp.analytes:
        for m in pattern.finditer(text):
            if m.end() > m.start():
                found.append((m.start(), m.end(), rule.fact))
    for pattern, scale in comp.ps:
        for m in pattern.finditer(text):
            found.append((m.start(), m.end(), scale))
    found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
    out: list[tuple[int, int, str]] = []
    for start, end, fact in found:
        if out and start < out[-1][1]:
            prev = out[-1]
            # the same words can name an absolute count and its ULN multiple: keep both
            if (start, end) == prev[:2]:
                out.append((start, end, fact))
            continue
        out.append((start, end, fact))
    return out


def _link(text: str, th: Threshold, mentions: list[tuple[int, int, str]], floor: int) -> Threshold:
    """Attach the entity a threshold constrains: the nearest mention before it in the clause,
    else one right after it ("18 years of age", "2 prior lines")."""
    start, end = th.span
    # "over age 18", "Minimum age: 18": the entity is named inside the comparison
    digit = re.search(r"\d", text[start:end])
    first_digit = start + digit.start() if digit else end
    chosen = [m for m in mentions if start <= m[0] and m[1] <= first_digit and m[2] == "age_years"][:1]
    for m_start, m_end, fact in reversed(mentions):
        if chosen and chosen[0][0] >= start:
            break
        if m_end > start or m_end < floor:
            continue
        gap = text[m_end:start]
        if chosen:
            last = chosen[-1]
            between = text[m_end : last[0]]
            if (m_start, m_end) == last[:2] or re.fullmatch(
                r"[\s()]*(?:/|,|and|or|and/or|&)?[\s()]*(?:serum\s+)?", between, re.IGNORECASE
            ):
                chosen.append((m_start, m_end, fact))
                continue
            break
        if _ENTITY_GAP.match(gap) and len(gap) <= 60:
            chosen.append((m_start, m_end, fact))
            continue
        break
    if not chosen:
        after = text[end : end + 40]
        for m_start, m_end, fact in mentions:
            if (
                m_start >= end
                and re.fullmatch(
                    r"\s*(?:of\s+|or\s+more\s+|or\s+older\s+|\(\w+\)\s*)?(?:prior\s+|previous\s+)?",
                    text[end:m_start],
                    re.IGNORECASE,
                )
                and m_start - end <= len(after)
            ):
                chosen.append((m_start, m_end, fact))
                break
    if not chosen:
        return th
    chosen.sort()
    # prefer the fact that fits the unit (ULN multiples vs absolute values)
    facts = _fit_unit(chosen, th.unit)
    # one entity per fact ("Absolute neutrophil count (ANC)"); a named scale over "performance status"
    scales = {"ecog", "karnofsky", "lansky"}
    if any(f[2] in scales for f in facts):
        facts = [f for f in facts if f[2] != "ps"]
    facts = [f for k, f in enumerate(facts) if all(f[2] != g[2] for g in facts[:k])]
    if not facts:
        return th
    first = facts[0]
    return Threshold(
        op=th.op,
        value=th.value,
        value2=th.value2,
        unit=th.unit,
        unit_text=th.unit_text,
        span=th.span,
        entity=first[2],
        entity_span=(first[0], first[1]),
        entity_text=text[first[0] : first[1]],
        temporal=th.temporal,
        extra_entities=tuple((f[2], (f[0], f[1])) for f in facts[1:]),
        values=th.values,
    )


def _fit_unit(chosen: list[tuple[int, int, str]], unit: str | None) -> list[tuple[int, int, str]]:
    rules = {a.fact: a for a in load_rules().analytes}
    out: list[tuple[int, int, str]] = []
    for start, end, fact in chosen:
        rule = rules.get(fact)
        if fact == "prior_lines" and unit not in (None, "1"):
            continue  # "2 prior lines" has no unit
        if fact in ("ecog", "karnofsky", "lansky", "ps") and unit not in (None, "%", "{score}"):
            continue  # "KPS for > 16 years of age": the value is not a score
        if fact in ("age_years", "life_expectancy_months") and unit not in (None, *_TIME_UNITS):
            continue
        if rule is not None:
            if unit == "{xULN}":
                if not rule.uln_only and any(
                    r.uln_only and (s, e) == (start, end) for s, e, f in chosen for r in [rules.get(f)] if r
                ):
                    continue
            elif (rule.uln_only and unit is not None) or (
                rule.uln_only and any(s == start and f != fact for s, _e, f in chosen)
            ):
                continue
        if all((s, e) != (start, end) for s, e, _f in out):
            out.append((start, end, fact))
    return out


_GENERIC_ENTITY = re.compile(r"([A-Za-z][\w'\-/]*(?:\s+[A-Za-z][\w'\-/]*){0,3})\s*(?:\([^)]*\))?\s*[:=]?\s*$")
_STOP_ENTITY = re.compile(
    r"\b(?:is|are|be|must|should|of|with|than|a|an|the|or|and|at|least|greater|less|more|equal|to|"
    r"no|not|over|under|above|below|have|has|value|level|count)\b",
    re.IGNORECASE,
)


def find_thresholds(text: str) -> list[Threshold]:
    """Every numeric comparison in ``text`` with the entity it constrains.

    This is the threshold stage of :func:`parse_criterion`, exposed for the LCT benchmark. Entities
    are facts when an analyte name from the rules is found next to the comparison, else the nearest
    preceding words (``entity_text``) with ``entity`` None.

    Args:
        text: criterion text (unescaped).

    Returns:
        Thresholds in text order.
    """
    mentions = _entity_mentions(text)
    raw = _share_units(text, list(_raw_thresholds(text)))
    out: list[Threshold] = []
    floor = 0
    for th in raw:
        clause_start = max(text.rfind(";", 0, th.span[0]), text.rfind(". ", 0, th.span[0]))
        linked = _link(text, th, mentions, max(floor, clause_start + 1))
        if linked.entity is None:
            window = text[max(clause_start + 1, floor, th.span[0] - 60) : th.span[0]]
            g = _GENERIC_ENTITY.search(window)
            if g:
                words = g.group(1)
                pieces = _STOP_ENTITY.split(words)
                entity_text = pieces[-1].strip() if pieces and pieces[-1].strip() else None
                if entity_text:
                    base = th.span[0] - len(window) + g.start(1) + words.rfind(entity_text)
                    linked = replace(
                        linked, entity_span=(base, base + len(entity_text)), entity_text=entity_text
                    )
        if linked.entity in ("life_expectancy_months", "age_years"):
            linked = replace(linked, temporal=False)  # "life expectancy < 3 months from enrolment"
        elif (
            linked.unit in _TIME_UNITS
            and linked.entity is None
            and _DURATION_OF.search(linked.entity_text or "")
        ):
            linked = replace(linked, temporal=True)  # "epileptic seizure < 2 years": how long ago, not an age
        elif (
            linked.unit in _TIME_UNITS - {"a"}
            and not linked.temporal
            and linked.entity not in ("age_years", "life_expectancy_months")
        ):
            words = (linked.entity_text or "") + " " + text[th.span[0] : th.span[1] + 25]
            if not re.search(
                r"\bage|gestation|expectancy|\bold\b|older|younger|survival|\blive\b", words, re.IGNORECASE
            ):
                linked = replace(linked, temporal=True)
        out.append(linked)
        floor = th.span[1]
    return _share_entities(text, out)


# the thing a time span is about when it is a duration or a time since, not an age
_DURATION_OF = re.compile(
    r"\b(?:seizures?|graft|treatment|therapy|drugs?|medications?|training|DNA|diagnosis|disease|history|"
    r"duration|experience|use|smoking|remission|transplants?|transplantation|episodes?|symptoms?|infection|"
    r"follow-?up|residence|stability|lasting|exposure|sobriety|abstinence)$",
    re.IGNORECASE,
)
_COORDINATED = re.compile(r"\s*(?:,|and|or|&|to)?\s*", re.IGNORECASE)
_BOUNDS = ("ge", "gt", "le", "lt")


def _coordinated(text: str, a: Threshold, b: Threshold) -> bool:
    """Two bounds written as one comparison: "≥20 and ≤40 years", "<18 or >80 years"."""
    return (
        a.op in _BOUNDS
        and b.op in _BOUNDS
        and a.span[1] <= b.span[0]
        and _COORDINATED.fullmatch(text[a.span[1] : b.span[0]]) is not None
    )


def _share_units(text: str, ths: list[Threshold]) -> list[Threshold]:
    """The first of two coordinated bounds takes the unit written once after the second."""
    out = list(ths)
    for k in range(len(out) - 1):
        a, b = out[k], out[k + 1]
        if a.unit is None and b.unit is not None and len(a.values) == 1 and _coordinated(text, a, b):
            out[k] = replace(a, unit=b.unit, unit_text=b.unit_text, temporal=b.temporal)
    return out


def _share_entities(text: str, ths: list[Threshold]) -> list[Threshold]:
    """Coordinated bounds constrain the same entity ("age ≥ 24 months and ≤ 36 months")."""
    out = list(ths)
    for k in range(len(out) - 1):
        a, b = out[k], out[k + 1]
        if not _coordinated(text, a, b) or (a.entity is None) == (b.entity is None):
            continue
        src, dst = (a, k + 1) if a.entity is not None else (b, k)
        target = out[dst]
        out[dst] = replace(
            target,
            entity=src.entity,
            entity_span=src.entity_span,
            entity_text=src.entity_text,
            extra_entities=src.extra_entities,
            temporal=target.temporal and src.entity not in ("age_years", "life_expectancy_months"),
        )
    return out


# --- parse results -------------------------------------------------------------------------------


class LeafSpan(_Strict):
    """Where a typed leaf was read: its id in the tree and its characters in the criterion text."""

    id: str
    fact: str
    start: int
    end: int


class ParsedCriterion(_Strict):
    """One criterion, parsed.

    Attributes:
        source: the criterion text and its place in the record.
        criterion: the tree to evaluate (exclusions already negated).
        status: ``typed`` (fully), ``partial`` (typed parts plus a review leaf) or ``review``.
        leaves: typed leaves with their spans in ``source.text`` (review leaves are not listed).
        notes: why something went to review, and any partial parse that was not used.
    """

    source: CriterionText
    criterion: Criterion
    status: Status
    leaves: tuple[LeafSpan, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def typed(self) -> bool:
        """True when at least part of the criterion is typed."""
        return self.status != "review"


class _Leaf(NamedTuple):
    """One typed leaf before it becomes a criterion node: ``fact op value [unit]``."""

    fact: str
    op: Operator
    value: Scalar | tuple[Scalar, ...]
    unit: str | None = None
    remark: str = ""


@dataclass
class _Part:
    """A typed piece of a criterion: a subtree builder with the span it was read from."""

    start: int
    end: int
    kind: str
    leaves: list[_Leaf]
    combine: Literal["all", "any"] = "all"
    negatable: bool = False  # presence/absence concept: ConText negation flips it
    absent: list[_Leaf] = field(default_factory=list)
    conditional: bool = False
    note: str | None = None


def _leaf_node(lid: str, text: str, leaf: _Leaf) -> Criterion:
    value = leaf.value
    if isinstance(value, float) and value.is_integer() and leaf.fact not in _FLOAT_FACTS:
        value = int(value)
    listy = leaf.op in ("in", "not_in", "has_any", "has_all", "has_none")
    val: Scalar | tuple[Scalar, ...] = (value,) if listy and not isinstance(value, tuple) else value
    return Criterion(
        id=lid, text=text, fact=leaf.fact, op=leaf.op, value=val, unit=leaf.unit, remarks=leaf.remark or None
    )


_FLOAT_FACTS = frozenset({"anc", "platelets", "alc", "hemoglobin", "creatinine", "bilirubin"})


def _review_leaf(lid: str, text: str, note: str | None = None) -> Criterion:
    remark = f"needs review: {text}" + (f" [{note}]" if note else "")
    return Criterion(id=lid, text=text, fact=NEEDS_REVIEW, op="eq", value=True, remarks=remark)


# --- medspacy ConText ----------------------------------------------------------------------------


@cache
def _nlp() -> Language:
    """A blank English spaCy pipeline with a sentencizer and medspacy ConText (no model download)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import spacy
        from medspacy.context import (  # type: ignore[import-untyped]
            ConText,  # noqa: F401  (registers the factory)
            ConTextRule,
        )

        rules = load_rules()
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        ctx: Any = nlp.add_pipe("medspacy_context", config={"rules": None})
        # medspaCy's default rules, less those written for clinical notes that mislead on eligibility text
        disabled = {literal.lower() for literal in rules.disabled_default_context_rules}
        defaults = ConTextRule.from_json(ctx.DEFAULT_RULES_FILEPATH)
        ctx.add([r for r in defaults if r.literal.lower() not in disabled])
        ctx.add([ConTextRule(r.literal, r.category, direction=r.direction) for r in rules.context_rules])
    return nlp


@dataclass(frozen=True)
class _Modifiers:
    negated: bool
    conditional: tuple[str, ...]


def _context(text: str, spans: Sequence[tuple[int, int]]) -> list[_Modifiers]:
    """ConText modifiers of each span: negated, and the conditional/hedge cues that scope over it."""
    if not spans:
        return []
    nlp = _nlp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = nlp.make_doc(text)
        ents: list[Span] = []
        index: dict[tuple[int, int], int] = {}
        for i, (start, end) in enumerate(spans):
            span = doc.char_span(start, end, label="TARGET", alignment_mode="expand")
            if span is None or any(span.start < e.end and e.start < span.end for e in ents):
                continue
            ents.append(span)
            index[(span.start, span.end)] = i
        ents.sort(key=lambda s: s.start)
        doc.ents = ents
        for _name, proc in nlp.pipeline:
            doc = proc(doc)
    out = [_Modifiers(False, ())] * len(spans)
    for ent in doc.ents:
        k = index.get((ent.start, ent.end))
        if k is None:
            continue
        cats = [m.category for m in ent._.modifiers]
        cond = tuple(
            f"{m.category.lower()}: '{doc[m.modifier_span[0] : m.modifier_span[1]].text}'"
            for m in ent._.modifiers
            if m.category in ("CONDITION", "HEDGE", "HYPOTHETICAL", "POSSIBLE_EXISTENCE")
        )
        out[k] = _Modifiers("NEGATED_EXISTENCE" in cats, cond)
    # spans that could not be aligned share the modifiers of an overlapping one
    for i, (start, end) in enumerate(spans):
        if out[i] == _Modifiers(False, ()):
            for j, (s2, e2) in enumerate(spans):
                if j != i and s2 < end and start < e2 and out[j] != _Modifiers(False, ()):
                    out[i] = out[j]
                    break
    return out


# --- recognisers ---------------------------------------------------------------------------------

_NEG_CUE_AFTER = re.compile(
    r"^[\s\-:]*(?:\([^)]{0,25}\)\s*)?(?:antibod(?:y|ies)\s+|antigen\s+|serology\s+|test\s+|status\s+|"
    r"infection\s+|DNA\s+|RNA\s+|viral\s+load\s+)?(?:is\s+|must\s+be\s+|should\s+be\s+)?"
    r"(?:negative|seronegative|non-?reactive|undetectable|not\s+detected|neg\b)",
    re.IGNORECASE,
)
_NEG_CUE_BEFORE = re.compile(
    r"(?:negative|seronegative|non-?reactive|undetectable)\s+(?:(?:for|to)\s+)?(?:(?:the\s+)?[\w-]+\s+){0,3}$",
    re.IGNORECASE,
)
_POS_CUE_AFTER = re.compile(
    r"^[\s\-:]*(?:\([^)]{0,25}\)\s*)?(?:[\w]+\s+){0,2}(?:positiv|seropositiv|reactive)", re.IGNORECASE
)
_TESTED_FOR = re.compile(
    r"\b(?:test(?:ed|ing|s)?|screen(?:ed|ing)?|serolog\w*|assess(?:ed|ment)?|evaluat\w*)\s+(?:\w+\s+){0,2}?"
    r"(?:for|of)\s+(?:\w+\s+){0,2}$",
    re.IGNORECASE,
)
_NEGATION_BEFORE = re.compile(
    r"\b(?:no|not|non|without|never|neither|nor|free\s+of|absence\s+of)\b[\s-]*(?:\w+\s+){0,2}$",
    re.IGNORECASE,
)
_LIST_GAP = re.compile(r"^[\s,;/()]*(?:and/or|and|or|nor|&)?[\s,;/()]*$", re.IGNORECASE)
_TEST_ONLY = re.compile(r"\btest(?:ing|s)?\b|\bscreen", re.IGNORECASE)
_CONTRACEPTION = re.compile(
    r"contracept|birth\s+control|avoid\w*\s+(?:becoming\s+)?pregnan|prevent\w*\s+pregnan|becom\w*\s+pregnan|"
    r"get\s+pregnant|plan\w*\s+(?:to\s+)?(?:become\s+|get\s+)?pregnan|abstinen|father|sperm|pregnancy\s+(?:during|while)"
    r"|child-?bearing\s+potential\s+(?:must|should|who)\s+(?:agree|use|be\s+willing)",
    re.IGNORECASE,
)
_WOCBP = re.compile(
    r"\b(?:women|females?|men|males?|patients?|subjects?|participants?)\s+of\s+(?:child[\s-]*bearing|"
    r"reproductive)\s+(?:potential|age)|\bWOCBP\b|\bFOCBP\b",
    re.IGNORECASE,
)
_POPULATION_CONDITION = re.compile(
    r"(?:^|[.;]\s*)(?:for\s+|in\s+)?(?:patients|subjects|participants|those|children|adults)\s+"
    r"(?:(?:with|who|aged|younger|older|under|over)\b|[≥><≤]|\d)"
    r".*\b(?:must|should|need|require|will|are\s+required)\b",
    re.IGNORECASE,
)
# "(for patients < 1 year old)", "for pts > 12 years", "for those receiving nitrosoureas",
# "KPS for > 16 years of age": the criterion, or part of it, applies to a subgroup only
_SUBGROUP = re.compile(
    r"\bfor\s+(?:(?:all|the|any)\s+)?(?:(?:pediatric|paediatric|adult|female|male|young|older)\s+)?"
    r"(?:patients|pts|subjects|participants|those|children|adults|adolescents|infants|persons|individuals|"
    r"people)\b"
    r"|\bfor\s+(?:[<>≤≥]|=<|>=|<=)?\s*\d+\s*(?:years?|yrs?)\s+(?:of\s+age|old)\b",
    re.IGNORECASE,
)
# "KPS 50-100 (> 16 years of age) OR Lansky 50-100 (<= 16 years of age)", "(>= 14 days for vinorelbine)",
# "ALT <= 3 x ULN (without liver metastases)": a parenthetical that says to whom a value applies
_QUALIFIER = re.compile(
    r"(?P<value>\(\s*(?:for\s+)?(?:patients\s+|pts\s+|subjects\s+|ages?\s+|aged\s+)?(?:[<>≤≥˂˃]|=<|>=|<=|</=|>/=)"
    r"\s*\d+\s*(?:years?|yrs?|months?)\b[^()]*\)"
    r"|\([^()]*\d[^()]*\bfor\s+(?!example\b|instance\b|details?\b|more\b)[^()]*\))"
    r"|(?P<after>\(\s*(?:with|without|in|for)\s+(?:(?:the\s+)?presence\s+of\s+)?(?:\w+\s+){0,2}"
    r"(?:metastas[ie]s|metastatic|involvement|gilbert\w*|patients|subjects|those|children|adults)\b[^()]*\))",
    re.IGNORECASE,
)


def _qualified(text: str, typed: list[_Part]) -> bool:
    """A typed value that holds for a subgroup only: typed inside a qualifying parenthetical ("(>= 14 days
    for vinorelbine)", "(> 16 years of age)"), or right before one ("<= 3 x ULN (without liver metastases)")."""
    for m in _QUALIFIER.finditer(text):
        a, b = m.span()
        if any(p.start < b and a < p.end for p in typed):
            return True
        if m.group("after") and any(0 <= a - p.end <= 3 for p in typed):
            return True
    return False


# "See section below": the criterion depends on text elsewhere in the protocol
_CROSS_REFERENCE = re.compile(r"\b(?:see|refer\s+to)\s+(?:the\s+)?(?:section|below|above)\b", re.IGNORECASE)
# "Related donors ...": a criterion whose subject is the donor, not the patient
_DONOR_SUBJECT = re.compile(
    r"^\W*(?:(?:the|all|potential|related|unrelated|matched|sibling|family|haplo\w*|HLA[-\s]?\w+)\s+){0,3}donors?"
    r"(?:\s+(?:is|are|must|should|will|has|have|with|who|that|aged?|ages?)\b|\s*[(:≥>≤<\d])",
    re.IGNORECASE,
)
# "... in Phase 1 and <= 1 in Phase 2", "NOTE: the first participant in each dose cohort must be >= 18":
# values that hold for one part of the study only
_STUDY_PART = re.compile(
    r"\b(?:cohorts?|dose\s+levels?|dose[-\s](?:escalation|expansion)|expansion\s+(?:cohort|phase|part|arm|stage)|"
    r"phase\s+(?:1|2|3|I{1,3})|arms?\s+(?-i:[A-Z0-9])|part\s+(?-i:[A-Z0-9])|first\s+(?:participant|patient|subject)s?)\b",
    re.IGNORECASE,
)
_NOTE = re.compile(r"\bnote\s*:", re.IGNORECASE)
_HEADS_WHAT_FOLLOWS = re.compile(r"[^:;.()]{0,40}:")


def _study_part(text: str, typed: list[_Part]) -> bool:
    """A typed value that holds for one part of the study: "ECOG <= 2 in Phase 1 and <= 1 in Phase 2",
    "Measurable disease (phase II)", "For Phase I: ...". A heading such as "Phase I and Phase II Cohort 1:"
    scopes only what follows it."""
    for m in _STUDY_PART.finditer(text):
        if _HEADS_WHAT_FOLLOWS.match(text, m.end()):
            if any(p.start >= m.end() for p in typed):
                return True
        else:
            return True
    return False


def _tautology(typed: list[_Part]) -> bool:
    """Alternatives that admit every value of one fact ("creatinine <= 1.5 x ULN or > 1.5 x ULN, but ...");
    the two bounds of one range ("age 2 to 60") are not alternatives."""
    leaves = [
        (k, leaf) for k, p in enumerate(typed) for leaf in p.leaves if isinstance(leaf.value, (int, float))
    ]
    for ka, a in leaves:
        for kb, b in leaves:
            same_range = ka == kb and typed[ka].combine == "all"
            if not same_range and a.fact == b.fact and a.op in ("le", "lt") and b.op in ("ge", "gt"):
                assert isinstance(a.value, (int, float)) and isinstance(b.value, (int, float))
                if b.value <= a.value:
                    return True
    return False


def _cue_absent(text: str, start: int, end: int, prev: tuple[int, int, bool | None] | None) -> bool | None:
    """Negative (True) / positive (False) result cue around a mention, None when there is none."""
    clause_end = len(text)
    m = re.search(r"[;.]", text[end:])
    if m:
        clause_end = end + m.start()
    after = text[end:clause_end]
    if _NEG_CUE_AFTER.match(after):
        return True
    if _POS_CUE_AFTER.match(after):
        return False
    clause_start = max(text.rfind(";", 0, start), text.rfind(". ", 0, start)) + 1
    before = text[clause_start:start]
    if re.search(r"\bnon-?\s*$", before, re.IGNORECASE):
        return True  # "non-pregnant", "non-lactating"
    if (
        prev is not None
        and prev[2] is not None
        and prev[1] <= start
        and _LIST_GAP.match(text[prev[1] : start])
    ):
        return prev[2]
    if _NEG_CUE_BEFORE.search(before[-60:]):
        return True
    if re.search(
        r"(?:positiv\w*|seropositiv\w*|reactive)\s+(?:(?:for|to)\s+)?(?:[\w-]+\s+){0,3}$",
        before[-60:],
        re.IGNORECASE,
    ):
        return False
    return None


def _concept_parts(text: str, section: str) -> list[_Part]:
    parts: list[_Part] = []
    taken: list[tuple[int, int]] = []
    comp = _compiled()
    hits: list[tuple[int, int, ConceptRule]] = []
    for pattern, rule in comp.concepts:
        if (rule.exclusion_only and section != "exclusion") or (
            rule.inclusion_only and section != "inclusion"
        ):
            continue
        for m in pattern.finditer(text):
            s, e = m.span()
            while s < e and text[s] == " ":
                s += 1
            if e <= s or any(s < b and a < e for a, b in taken):
                continue
            taken.append((s, e))
            hits.append((s, e, rule))
    hits.sort(key=lambda h: h[0])
    prev: tuple[int, int, bool | None] | None = None
    for s, e, rule in hits:
        if rule.id in ("pregnant", "breastfeeding") and _CONTRACEPTION.search(text):
            continue
        absent_cue = _cue_absent(text, s, e, prev)
        non = re.search(r"\bnon-?\s*$", text[max(0, s - 5) : s], re.IGNORECASE)
        if non is not None:
            s -= len(non.group(0))  # the part covers "non-pregnant"
        if (
            rule.id in ("hiv", "hbv", "hcv", "pregnant")
            and absent_cue is None
            and _TESTED_FOR.search(text[max(0, s - 40) : s])
        ):
            continue  # "must be tested for HIV": a work-up requirement, not a status
        if rule.id == "pregnant" and _TEST_ONLY.search(text[s : e + 12]) and absent_cue is None:
            continue
        if (
            rule.id in ("hiv", "hbv", "hcv")
            and absent_cue is None
            and re.match(
                r"\s*(?:\w+\s+){0,3}(?:test|testing|serology|screen)", text[e : e + 30], re.IGNORECASE
            )
            and section == "inclusion"
        ):
            continue
        present = _Leaf(rule.present.fact, rule.present.op, rule.present.value)
        absent = _Leaf(rule.absent.fact, rule.absent.op, rule.absent.value)
        part = _Part(
            start=s,
            end=e,
            kind=f"concept:{rule.id}",
            leaves=[absent if absent_cue else present],
            negatable=absent_cue is None,
            absent=[absent],
        )
        parts.append(part)
        prev = (s, e, absent_cue)  # None: no cue, so ConText decides for the whole list
    return parts


def _therapy_parts(text: str, section: str, thresholds: list[Threshold]) -> list[_Part]:
    comp = _compiled()
    parts: list[_Part] = []
    taken: list[tuple[int, int]] = []
    for pattern, rule in comp.therapies:
        for m in pattern.finditer(text):
            s, e = m.span()
            if any(s < b and a < e for a, b in taken):
                continue
            taken.append((s, e))
            window = [
                t
                for t in thresholds
                if t.temporal and t.unit in _TIME_UNITS and abs(_gap(t.span, (s, e))) <= 60
            ]
            present = _Leaf(rule.fact, "has_any", rule.code)
            absent = _Leaf(rule.fact, "has_none", rule.code)
            if window:
                th = window[0]
                between = text[min(e, th.span[1]) : max(s, th.span[0])]
                about_other = _OTHER_EVENT.search(between) is not None
                if (
                    rule.fact == "prior_transplant"
                    and th.op in ("le", "lt")
                    and th.value2 is None
                    and not about_other
                ):
                    months = to_canonical(th.value, th.unit or "mo", "mo")
                    fact = f"months_since_{rule.code}_transplant"
                    if months is not None:
                        part = _Part(
                            start=min(s, th.span[0]),
                            end=max(e, th.span[1]),
                            kind="transplant_window",
                            leaves=[present, _Leaf(fact, th.op, round(months, 2), "mo")],
                        )
                        parts.append(part)
                        continue
                part = _Part(
                    start=s,
                    end=e,
                    kind="therapy",
                    leaves=[present],
                    conditional=True,
                    note=f"time window on {rule.code} not typed",
                )
                parts.append(part)
                continue
            if re.match(r"\s*(?:-|\s)?(?:naive|naïve)", text[e : e + 8], re.IGNORECASE):
                parts.append(_Part(start=s, end=e + 8, kind="therapy", leaves=[absent]))
                continue
            parts.append(
                _Part(start=s, end=e, kind="therapy", leaves=[present], negatable=True, absent=[absent])
            )
    return parts


# "allogeneic transplant, GVHD occurred within 6 months", "relapsed within 6 months after transplant":
# the time window belongs to another event, not to the transplant
_OTHER_EVENT = re.compile(
    r"\b(?:gvhd|graft|occurr\w*|develop\w*|diagnos\w*|relaps\w*|progress\w*|recurr\w*|toxicit\w*)\b",
    re.IGNORECASE,
)


def _gap(a: tuple[int, int], b: tuple[int, int]) -> int:
    if a[1] <= b[0]:
        return b[0] - a[1]
    if b[1] <= a[0]:
        return a[0] - b[1]
    return 0


def _washout_parts(text: str, thresholds: list[Threshold], used: set[tuple[int, int]]) -> list[_Part]:
    comp = _compiled()
    names: list[tuple[int, int, str]] = []
    for pattern, rule in comp.washouts:
        for m in pattern.finditer(text):
            if not any(m.start() < b and a < m.end() for a, b, _f in names):
                names.append((m.start(), m.end(), rule.fact))
    parts: list[_Part] = []
    for th in thresholds:
        if (
            not th.temporal
            or th.span in used
            or th.value2 is not None
            or len(th.values) > 1
            or th.unit not in ("d", "wk", "mo", "h")
        ):
            continue
        near = [n for n in names if _gap((n[0], n[1]), th.span) <= 70]
        if not near:
            continue
        days = to_canonical(th.value, th.unit, "d")
        if days is None:
            continue
        within = bool(
            re.search(
                r"within|in\s+the\s+(?:last|past)|last|past|[<≤]|=<|<=",
                text[th.span[0] : th.span[1]] + text[max(0, th.span[0] - 30) : th.span[0]],
                re.IGNORECASE,
            )
        )
        op: Operator = th.op if th.op in ("ge", "gt", "le", "lt") else "le"
        if th.op == "eq" and not within:
            continue
        leaves = [_Leaf(fact, op, round(days, 1), "d") for _s, _e, fact in near]
        start = min([th.span[0], *(n[0] for n in near)])
        end = max([th.span[1], *(n[1] for n in near)])
        parts.append(
            _Part(
                start=start,
                end=end,
                kind="washout",
                leaves=leaves,
                # "chemotherapy or radiotherapy within 4 weeks": either; "at least 4 weeks since prior
                # chemotherapy or radiotherapy": both
                combine="any" if op in ("le", "lt") else "all",
                negatable=True,
                absent=[leaf._replace(op=_flip(leaf.op)) for leaf in leaves],
            )
        )
        used.add(th.span)
    return parts


def _flip(op: Operator) -> Operator:
    flips: dict[str, Operator] = {"le": "gt", "lt": "ge", "ge": "lt", "gt": "le"}
    return flips.get(op, op)


def _disease_parts(text: str, section: str) -> list[_Part]:
    if section != "inclusion":
        return []
    comp = _compiled()
    found: list[tuple[int, int, str]] = []
    for pattern, rule in comp.diseases:
        for m in pattern.finditer(text):
            if any(m.start() < b and a < m.end() for a, b, _c in found):
                continue
            found.append((m.start(), m.end(), rule.concept))
    if not found:
        return []
    if re.search(
        r"\b(?:history\s+of|prior|previous|other|another|second(?:ary)?)\s+(?:\w+\s+){0,2}"
        r"(?:malignan|cancer|tumou?r|neoplas)",
        text,
        re.IGNORECASE,
    ):
        return []
    concepts = tuple(dict.fromkeys(c for _s, _e, c in sorted(found)))
    start = min(s for s, _e, _c in found)
    end = max(e for _s, e, _c in found)
    leaf = _Leaf("diagnosis", "has_any", concepts)
    part = _Part(start=start, end=end, kind="diagnosis", leaves=[leaf])
    # keep the individual spans covered
    part.note = ";".join(f"{s}-{e}" for s, e, _c in found)
    return [part]


def _antigen_parts(text: str, section: str) -> list[_Part]:
    if section != "inclusion":
        return []
    comp = _compiled()
    parts: list[_Part] = []
    for pattern, code in comp.antigens:
        for m in pattern.finditer(text):
            after = comp.antigen_positive_after.match(text[m.end() :])
            before = comp.antigen_positive_before.search(text[max(0, m.start() - 40) : m.start()])
            if re.match(
                r"\s*-?\s*(?:negative|directed|targeted|CAR|specific)", text[m.end() :], re.IGNORECASE
            ):
                continue
            if after:
                parts.append(
                    _Part(
                        start=m.start(),
                        end=m.end() + after.end(),
                        kind="antigen",
                        leaves=[_Leaf(comp_fact(), "has_all", code)],
                    )
                )
            elif before:
                parts.append(
                    _Part(
                        start=m.start() - len(before.group(0)),
                        end=m.end(),
                        kind="antigen",
                        leaves=[_Leaf(comp_fact(), "has_all", code)],
                    )
                )
    return parts


def comp_fact() -> str:
    """The fact antigen expression is typed on (``tumor_antigens``)."""
    return load_rules().antigens.fact


def _sex_parts(text: str) -> list[_Part]:
    comp = _compiled()
    for pattern in comp.sex_any:
        m = pattern.search(text)
        if m:
            return [_Part(start=m.start(), end=m.end(), kind="sex_any", leaves=[])]
    stripped = text.strip()
    for patterns, code in ((comp.sex_female, "female"), (comp.sex_male, "male")):
        for pattern in patterns:
            m = pattern.search(stripped)
            if m:
                offset = text.find(stripped)
                return [
                    _Part(
                        start=offset + m.start(),
                        end=offset + m.end(),
                        kind="sex",
                        leaves=[_Leaf("sex", "eq", code)],
                    )
                ]
    return []


def _bounds(t: Threshold) -> tuple[float, float] | None:
    """Lowest and highest value of a range, or of a list of consecutive integers ("0 or 1",
    "1, 2 or 3"); None for a single value or any other list."""
    if t.op == "between":
        return min(t.values), max(t.values)
    if t.op == "eq" and len(t.values) > 1:
        vs = sorted(set(t.values))
        if all(v.is_integer() for v in vs) and vs == [vs[0] + k for k in range(len(vs))]:
            return vs[0], vs[-1]
    return None


def _ps_parts(thresholds: list[Threshold], text: str) -> list[_Part]:
    rules = load_rules().performance
    bands = {b.ecog: b for b in rules.ecog_karnofsky}
    ps = [t for t in thresholds if t.entity in ("ecog", "karnofsky", "lansky", "ps") and not t.temporal]
    if not ps:
        return []
    leaves: list[_Leaf] = []
    src = f"converted with {rules.source.ref} ({rules.source.verification.value})"
    start = min(min(t.span[0], (t.entity_span or t.span)[0]) for t in ps)
    end = max(t.span[1] for t in ps)
    for t in ps:
        scale = t.entity
        rng = _bounds(t)
        if len(t.values) > 1 and rng is None:
            continue  # "ECOG 0 or 2": not a band
        hi = rng[1] if rng else t.value
        if scale == "ps":
            scale = "ecog" if hi <= 5 else "karnofsky"
        if scale == "ecog":
            if (rng is not None and rng[0] == 0) or t.op in ("le", "lt"):
                e = int(hi) - (1 if t.op == "lt" else 0)
                if e not in bands:
                    continue
                leaves.append(_Leaf("ecog", "le", e, "{score}"))
                leaves.append(_Leaf("karnofsky", "ge", bands[e].karnofsky_min, "{score}", src))
            elif t.op in ("ge", "gt"):
                e = int(t.value) + (1 if t.op == "gt" else 0)
                if e not in bands and e != 5:
                    continue
                leaves.append(_Leaf("ecog", "ge", e, "{score}"))
                if e in bands:
                    leaves.append(_Leaf("karnofsky", "le", bands[e].karnofsky_max, "{score}", src))
            elif t.op == "eq" and rng is None and t.value in bands:
                leaves.append(_Leaf("ecog", "eq", int(t.value), "{score}"))
        else:
            facts = [scale] if scale is not None else []
            if t.op in ("ge", "gt"):
                k = t.value + (1 if t.op == "gt" else 0)
                for fact in facts:
                    leaves.append(_Leaf(fact, "ge", k, "{score}"))
                grades = [b.ecog for b in bands.values() if b.karnofsky_min >= k]
                if grades and scale == "karnofsky":
                    leaves.append(_Leaf("ecog", "le", max(grades), "{score}", src))
            elif t.op in ("le", "lt"):
                k = t.value - (1 if t.op == "lt" else 0)
                for fact in facts:
                    leaves.append(_Leaf(fact, "le", k, "{score}"))
                grades = [b.ecog for b in bands.values() if b.karnofsky_max <= k]
                if grades and scale == "karnofsky":
                    leaves.append(_Leaf("ecog", "ge", min(grades), "{score}", src))
            elif rng is not None:
                for fact in facts:
                    leaves.append(_Leaf(fact, "ge", rng[0], "{score}"))
    if not leaves:
        return []
    uniq = list(dict.fromkeys(leaves))
    return [_Part(start=start, end=end, kind="performance", leaves=uniq, combine="any")]


def _analyte_parts(
    text: str, thresholds: list[Threshold], parent: str | None, used: set[tuple[int, int]]
) -> tuple[list[_Part], list[str]]:
    rules = {a.fact: a for a in load_rules().analytes}
    units = _fact_units()
    parts: list[_Part] = []
    notes: list[str] = []
    parent_entity: str | None = None
    if parent:
        mentions = _entity_mentions(parent)
        if len(mentions) == 1 and len(parent.split()) <= 4:
            parent_entity = mentions[0][2]
    for th in thresholds:
        if th.span in used:
            continue
        entity = th.entity
        if entity is None and parent_entity is not None and parent_entity in rules:
            entity = parent_entity
        if (
            entity is None
            and th.unit == "a"
            and not th.temporal
            and (
                re.search(r"\b(?:old|older|younger|aged?)\b", text, re.IGNORECASE)
                or _PERSON_BEFORE.search(text[: th.span[0]])
                or (not text[: th.span[0]].strip() and not text[th.span[1] :].strip(" .;"))
            )
        ):
            entity = "age_years"  # "Women >= 20 years", "18-70 years, ECOG 0-1"
        if entity is None or entity not in rules or (th.temporal and entity != "age_years"):
            continue
        rng = _bounds(th)
        if len(th.values) > 1 and rng is None:
            continue  # a blood-pressure pair or a list that is not a range: left for review
        targets = [(entity, th.entity_span or th.span)]
        targets += [(f, s) for f, s in th.extra_entities if f in rules]
        leaves: list[_Leaf] = []
        bad = False
        for fact, _span in targets:
            rule = rules[fact]
            canonical = units.get(fact)
            if canonical is None and fact != "prior_lines":
                continue
            canonical = canonical or "1"
            vals = list(rng) if rng is not None else [th.value]
            conv = [_convert(v, th.unit, rule, canonical) for v in vals]
            if any(c is None for c in conv):
                notes.append(
                    f"{fact}: value {th.value:g} {th.unit_text or ''} not convertible or implausible"
                )
                bad = True
                continue
            if fact == "prior_lines" and th.unit not in (None, "1"):
                continue
            known = [c for c in conv if c is not None]
            if rng is not None:
                leaves.append(_Leaf(fact, "ge", _round(min(known)), canonical))
                leaves.append(_Leaf(fact, "le", _round(max(known)), canonical))
            elif th.op != "between":
                leaves.append(_Leaf(fact, th.op, _round(known[0]), canonical))
        start = min(th.span[0], (th.entity_span or th.span)[0])
        if leaves:
            parts.append(_Part(start=start, end=th.span[1], kind="threshold", leaves=leaves))
            used.add(th.span)
        elif bad:
            parts.append(
                _Part(
                    start=start,
                    end=th.span[1],
                    kind="threshold",
                    leaves=[],
                    conditional=True,
                    note=notes[-1] if notes else None,
                )
            )
            used.add(th.span)
    return parts, notes


# a threshold in years right after a word for the patient describes the person ("Female or male
# patients >= 18 years", "Women >= 20 years"); so does one that is the whole criterion ("> 18 yrs")
_PERSON_BEFORE = re.compile(
    r"\b(?:patients?|subjects?|participants?|persons?|individuals?|volunteers?|adults?|children|"
    r"women|men|males?|females?)\s*(?:\(\s*)?$",
    re.IGNORECASE,
)
# ">= 16 years: 1.7 mg/dL (male)": a row of a table keyed by age, not an age requirement
_AGE_ROW = re.compile(
    r"^\W*(?:ages?\s*)?(?:[<>≤≥˂˃]|=<|>=|<=|> =|</=|>/=)?\s*\d+(?:\s*(?:-|to)\s*\d+)?\s*"
    r"(?:years?|yrs?|months?)(?:\s+(?:of\s+age|old))?\s*:",
    re.IGNORECASE,
)


def _round(value: float) -> float:
    if value == 0:
        return 0.0
    digits = 4 - math.floor(math.log10(abs(value)))
    return round(value, max(0, digits))


def _convert(value: float, unit: str | None, rule: AnalyteRule, canonical: str) -> float | None:
    lo, hi = rule.plausible
    candidates = [unit] if unit is not None else list(rule.bare_units)
    if unit == "%" and canonical == "{score}":
        candidates = ["{score}"]
    if canonical == "1" and unit is None:
        candidates = ["1"]
    for cand in candidates:
        if cand is None:
            continue
        if cand == "{xULN}" and canonical != "{xULN}":
            return None
        conv = to_canonical(value, cand, canonical, rule.molar_mass)
        if cand == "{score}" and canonical == "{score}":
            conv = value
        if conv is not None and lo <= conv <= hi:
            return conv
    return None


# --- assembly ------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*")


def _leftover(text: str, parts: list[_Part], comparisons: Sequence[tuple[int, int]] = ()) -> list[str]:
    """Significant words not covered by typed parts (filler words and abbreviations ignored), and
    comparisons no part covers ("with ≥ 40 kg": a requirement, even when all its words are filler)."""
    filler = _compiled().filler
    covered = [(p.start, p.end) for p in parts]
    for p in parts:
        if p.kind == "diagnosis" and p.note:
            covered += [(int(a), int(b)) for a, b in (x.split("-") for x in p.note.split(";"))]
    out: list[str] = [
        f"[{text[a:b]}]"
        for a, b in comparisons
        if 0 <= a < b <= len(text) and not any(c <= a and b <= d for c, d in covered)
    ]
    for m in _WORD.finditer(text):
        if any(a <= m.start() and m.end() <= b for a, b in covered):
            continue
        word = m.group(0).lower().strip("'-")
        if word in filler or len(word) <= 1:
            continue
        inside = text.rfind("(", 0, m.start()) > text.rfind(")", 0, m.start())
        if inside and m.group(0).isupper() and len(m.group(0)) <= 6:
            continue
        out.append(word)
    return out


def parse_criterion(ct: CriterionText, id_prefix: str | None = None) -> ParsedCriterion:
    """Parse one criterion into a tree (or a review leaf).

    Args:
        ct: the criterion, as split by :func:`~actnav.trials.criteria_text.split_criteria`.
        id_prefix: prefix of the node ids (default ``inc3`` / ``exc12`` / ``unk0`` by section and index).

    Returns:
        The parsed criterion; ``status`` tells whether it was fully typed, partly, or not at all.
    """
    prefix = id_prefix or f"{ct.section[:3]}{ct.index}"
    text = ct.text
    if ct.population == "donor":
        return _review(ct, prefix, ("donor criterion: not about the patient",))
    try:
        return _parse(ct, prefix)
    except Exception as exc:  # a rule bug must not lose the criterion
        return _review(ct, prefix, (f"parser error: {type(exc).__name__}: {exc}",))
    finally:
        del text


def _review(ct: CriterionText, prefix: str, notes: tuple[str, ...] = ()) -> ParsedCriterion:
    note = "; ".join(notes) if notes else None
    leaf = _review_leaf(f"{prefix}.r", ct.text, note)
    return ParsedCriterion(source=ct, criterion=leaf, status="review", notes=notes)


def _parse(ct: CriterionText, prefix: str) -> ParsedCriterion:
    text = ct.text
    section = ct.section
    thresholds = find_thresholds(text)
    used: set[tuple[int, int]] = set()
    parts: list[_Part] = []
    ps = _ps_parts(thresholds, text)
    for t in thresholds:
        if t.entity in ("ecog", "karnofsky", "lansky", "ps"):
            used.add(t.span)
    parts += ps
    parts += _washout_parts(text, thresholds, used)
    therapy = _therapy_parts(text, section, thresholds)
    for part in therapy:
        if part.kind == "transplant_window":
            used.update(t.span for t in thresholds if part.start <= t.span[0] and t.span[1] <= part.end)
    analytes, notes = _analyte_parts(text, thresholds, ct.parent, used)
    parts += analytes
    parts += therapy
    parts += _concept_parts(text, section)
    parts += _disease_parts(text, section)
    parts += _antigen_parts(text, section)
    parts += _sex_parts(text)
    parts = _dedupe(parts)
    typed = [p for p in parts if p.leaves]
    notes_all = list(notes)

    if not typed:
        leftover = _leftover(text, parts)
        if parts and not leftover and all(p.kind == "sex_any" for p in parts):
            return _review(ct, prefix, ("no checkable content (any sex)",))
        return _review(ct, prefix, tuple(notes_all))

    # ConText: negation flips presence concepts; conditions and hedges send the criterion to review
    mods = _context(text, [(p.start, p.end) for p in parts])
    conditional: list[str] = []
    for part, mod in zip(parts, mods, strict=True):
        if part.negatable and mod.negated and part.kind == "washout" and part.leaves[0].op in ("ge", "gt"):
            # "no major surgery for at least 4 weeks prior", "> 4 weeks since prior chemotherapy and no
            # concurrent chemotherapy": the minimum already says none in that time; nothing to flip
            part.negatable = False
        elif part.negatable and mod.negated:
            part.leaves = part.absent
            part.negatable = False
            if part.kind == "washout":
                # "no chemotherapy or radiotherapy within 4 weeks": neither (not any = all not)
                part.combine = "all" if part.combine == "any" else "any"

        if mod.conditional and part.leaves:
            conditional.extend(mod.conditional)
        if part.conditional:
            conditional.append(part.note or f"{part.kind} qualified")
    sex_parts = [p for p in typed if p.kind == "sex"]
    if section == "exclusion" and sex_parts and (len(sex_parts) < len(typed) or _leftover(text, parts)):
        # "Women who are pregnant or breastfeeding": the sex names who the exclusion is about; as an
        # alternative of its own it would exclude every woman
        others = [leaf.fact for p in typed if p.kind != "sex" for leaf in p.leaves]
        if others and all(f in ("pregnant", "breastfeeding") for f in others):
            typed = [p for p in typed if p.kind != "sex"]
            parts = [p for p in parts if p.kind != "sex"]
        else:
            conditional.append("an exclusion qualified by sex")
    if section == "exclusion" and any(p.absent and p.leaves == p.absent for p in parts):
        # "Patients must not have received chemotherapy within 4 weeks", "No known brain metastases",
        # "Negative pregnancy test" listed as exclusions: read literally they exclude the patients they admit
        conditional.append("negated requirement in the exclusion list")
    # "Not pregnant or nursing": a negation in front of a list covers every member of the list
    ordered = sorted(parts, key=lambda p: p.start)
    for prev, part in itertools.pairwise(ordered):
        listed = prev.kind.startswith("concept:") or prev.kind == "therapy"
        if (
            listed
            and not prev.negatable
            and prev.absent
            and prev.leaves == prev.absent
            and part.negatable
            and (part.kind.startswith("concept:") or part.kind == "therapy")
            and _LIST_GAP.match(text[prev.end : part.start])
            and _NEGATION_BEFORE.search(text[max(0, prev.start - 25) : prev.start])
        ):
            part.leaves = part.absent
            part.negatable = False
    if section == "inclusion" and any(
        leaf.fact in ("pregnant", "breastfeeding") and leaf.value is True for p in typed for leaf in p.leaves
    ):
        conditional.append(
            "an inclusion requiring pregnancy or breastfeeding: likely an exclusion listed as inclusion"
        )
    pregnancy_only = all(leaf.fact in ("pregnant", "breastfeeding") for p in typed for leaf in p.leaves)
    if _AGE_ROW.search(text):
        conditional.append("a row of a table keyed by age")
    if (
        _POPULATION_CONDITION.search(text)
        or (_SUBGROUP.search(text) and not pregnancy_only)
        or (_qualified(text, typed) and not pregnancy_only)
    ):
        conditional.append("applies to a subgroup ('patients with/who ... must', 'for patients ...')")
    reference = _CROSS_REFERENCE.search(text)
    if reference is not None and any(
        p.start > reference.start() for p in typed if p.kind in ("threshold", "washout", "performance")
    ):
        conditional.append("refers to other protocol text")
    if _DONOR_SUBJECT.search(text):
        conditional.append("about the donor, not the patient")
    note_at = _NOTE.search(text)
    if _study_part(text, typed) or (note_at is not None and any(p.end > note_at.start() for p in typed)):
        conditional.append("applies to one part of the study (cohort, phase, arm), or read in a note")
    if (
        section == "exclusion" or re.search(r"\bor\b", _between_parts(text, typed), re.IGNORECASE)
    ) and _tautology(typed):
        conditional.append("alternatives cover every value: the text must say more")
    if section == "inclusion" and _mixed_or(text, typed):
        conditional.append("'or' joins some typed parts and not others: the grouping is unclear")
    if _WOCBP.search(text) and any(
        leaf.fact not in ("pregnant", "breastfeeding") for p in typed for leaf in p.leaves
    ):
        conditional.append("applies to persons of child-bearing potential")
    if ct.parent and section == "inclusion":
        for pattern in _compiled().alternative_parent:
            if pattern.search(ct.parent):
                conditional.append(f"one of several alternatives or a subgroup (parent: '{ct.parent[:80]}')")
                break
    if section == "unknown":
        conditional.append("outside the inclusion and exclusion sections")

    leaf_nodes: list[tuple[Criterion, LeafSpan]] = []
    counter = 0

    seen: set[tuple[str, str, str]] = set()

    def build(part: _Part) -> Criterion | None:
        nonlocal counter
        nodes: list[Criterion] = []
        for leaf in part.leaves:
            seen_key = (leaf.fact, leaf.op, repr(leaf.value))
            if seen_key in seen:
                continue
            seen.add(seen_key)
            counter += 1
            lid = f"{prefix}.{counter}"
            node = _leaf_node(lid, text[part.start : part.end], leaf)
            nodes.append(node)
            leaf_nodes.append((node, LeafSpan(id=lid, fact=leaf.fact, start=part.start, end=part.end)))
        if not nodes:
            return None
        if len(nodes) == 1:
            return nodes[0]
        combine = "any_of" if part.combine == "any" else "all_of"
        counter += 1
        return Criterion.model_validate(
            {"id": f"{prefix}.{counter}", "text": text[part.start : part.end], combine: tuple(nodes)}
        )

    if conditional:
        partial = "; ".join(
            f"{leaf.fact} {leaf.op} {leaf.value}{(' ' + leaf.unit) if leaf.unit else ''}"
            for p in typed
            for leaf in p.leaves
        )
        reasons = tuple(dict.fromkeys(conditional))
        return _review(ct, prefix, (*reasons, f"partial parse not applied: {partial}"))

    comparisons = [th.span for th in thresholds if not th.temporal]
    leftover = _leftover(text, parts, comparisons)
    if section == "exclusion" and leftover:
        # an exclusion part excludes on its own only when its own clause was fully read
        clean: list[_Part] = []
        dropped: list[str] = []
        for part in typed:
            seg = _segment(text, part)
            seg_parts = [p for p in parts if seg[0] <= p.start and p.end <= seg[1]]
            if _leftover_in(text, seg, seg_parts, comparisons):
                dropped.append(part.kind)
            else:
                clean.append(part)
        if dropped:
            notes_all.append(f"qualified exclusion parts not applied: {', '.join(dropped)}")
        typed = clean
        if not typed:
            return _review(ct, prefix, tuple(notes_all))

    children = [node for node in (build(p) for p in typed) if node is not None]
    status: Status = "typed"
    if leftover:
        status = "partial"
        counter += 1
        note = f"not typed: {' '.join(leftover[:12])}"
        notes_all.append(note)
        children.append(_review_leaf(f"{prefix}.{counter}", text, note))
    use_any = section == "exclusion" or bool(re.search(r"\bor\b", _between_parts(text, typed), re.IGNORECASE))
    if len(children) == 1:
        body = children[0]
    else:
        counter += 1
        body = Criterion.model_validate(
            {"id": f"{prefix}.{counter}", "text": text, ("any_of" if use_any else "all_of"): tuple(children)}
        )
    tree = (
        Criterion.model_validate({"id": prefix, "text": text, "not": body})
        if section == "exclusion"
        else body
    )
    spans = [span for _n, span in leaf_nodes]
    if tree is body and body.id != prefix:
        if body.fact is not None:
            spans = [s.model_copy(update={"id": prefix}) if s.id == body.id else s for s in spans]
        tree = body.model_copy(update={"id": prefix})
    return ParsedCriterion(
        source=ct,
        criterion=tree,
        status=status,
        leaves=tuple(spans),
        notes=tuple(notes_all),
    )


def _mixed_or(text: str, parts: list[_Part]) -> bool:
    """Typed parts joined by "or" in one place and not in another ("ALL beyond 2nd remission or relapsed,
    age 2 to 60"): any_of over all of them would admit patients the text does not."""
    ordered = sorted(parts, key=lambda p: p.start)
    gaps = [text[a.end : b.start] for a, b in itertools.pairwise(ordered) if b.start >= a.end]
    if not any(p.kind in ("threshold", "washout", "performance", "transplant_window") for p in parts):
        # "HIV, hepatitis B, or hepatitis C": the commas of a list of conditions take the list's "or"
        gaps = [g for g in gaps if not re.fullmatch(r"[\s,;/]*", g)]
    with_or = [bool(re.search(r"\bor\b", g, re.IGNORECASE)) for g in gaps]
    return any(with_or) and not all(with_or)


def _between_parts(text: str, parts: list[_Part]) -> str:
    ordered = sorted(parts, key=lambda p: p.start)
    return " ".join(text[a.end : b.start] for a, b in itertools.pairwise(ordered) if b.start > a.end)


def _segment(text: str, part: _Part) -> tuple[int, int]:
    """The clause around a part: bounded by ; , ( ) and 'or' outside the part."""
    seps = re.compile(r"[;,()]|\bor\b|\band/or\b|\. ", re.IGNORECASE)
    start = 0
    for m in seps.finditer(text, 0, part.start):
        start = m.end()
    end = len(text)
    m2 = seps.search(text, part.end)
    if m2:
        end = m2.start()
    return start, end


def _leftover_in(
    text: str, seg: tuple[int, int], parts: list[_Part], comparisons: Sequence[tuple[int, int]] = ()
) -> bool:
    shifted = [
        _Part(
            start=p.start - seg[0],
            end=p.end - seg[0],
            kind=p.kind,
            leaves=p.leaves,
            note=";".join(
                f"{int(a) - seg[0]}-{int(b) - seg[0]}" for a, b in (x.split("-") for x in p.note.split(";"))
            )
            if p.kind == "diagnosis" and p.note
            else None,
        )
        for p in parts
    ]
    inside = [(a - seg[0], b - seg[0]) for a, b in comparisons if seg[0] <= a and b <= seg[1]]
    return bool(_leftover(text[seg[0] : seg[1]], shifted, inside))


def _dedupe(parts: list[_Part]) -> list[_Part]:
    """Drop parts nested inside a larger part of another kind (e.g. a therapy named in a washout)."""
    out: list[_Part] = []
    for part in sorted(parts, key=lambda p: (p.start, -(p.end - p.start))):
        if any(
            o.start <= part.start
            and part.end <= o.end
            and o.kind != part.kind
            and (o.kind in ("washout", "transplant_window", "performance") or part.kind == "sex_any")
            for o in out
        ):
            continue
        out.append(part)
    return out


def parse_criteria(cts: Iterable[CriterionText], id_prefix: str = "") -> list[ParsedCriterion]:
    """Parse several criteria (one record's), with ids ``<id_prefix><section><index>``."""
    return [parse_criterion(ct, f"{id_prefix}{ct.section[:3]}{ct.index}") for ct in cts]
