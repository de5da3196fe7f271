"""Split eligibility text into single inclusion and exclusion criteria.

Real records come in several shapes, all handled here:

* API v2 markdown: ``* `` / ``-`` bullets, numbered ``1.`` / ``1)`` / ``a.`` items, nested indented
  lists, headings ("Inclusion Criteria:", "Key Inclusion Criteria", "INCLUSION CRITERIA", "Exclusion
  criteria", "EXCLUSION CRITERIA: CELL HARVEST:"), subsections ("Disease-specific:", "Hematology:").
* Markdown escapes (``\\>=``, ``=\\<``, ``\\>``, ``\\<``, ``\\[``, ``\\^``, ``\\*``) are unescaped; unicode
  ``≥ ≤ × µ`` are kept as they are (the parser reads them).
* Legacy (pre-2017 XML era) text: "Inclusion Criteria:" and "Exclusion Criteria:" blocks with ``-``
  bullets whose lines wrap with a hanging indent, or everything in one paragraph.
* Free paragraphs: split into sentences.

Each criterion keeps its place: the section, the parent item or subsection heading it sits under
("Adequate organ function defined as:" for its children), its order and its character span in the
original (escaped) text, so a reviewer can be shown exactly what was read.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Section = Literal["inclusion", "exclusion", "unknown"]
Population = Literal["patient", "donor"]

__all__ = ["CriterionText", "Population", "Section", "split_criteria", "unescape"]


class CriterionText(BaseModel):
    """One criterion as written, with its context.

    Attributes:
        section: inclusion, exclusion, or unknown (text outside any recognised eligibility heading,
            e.g. a "Screening Evaluation" list, or a record with no headings at all).
        text: the criterion, unescaped, whitespace collapsed to single spaces.
        parent: the text of the enclosing item or subsection heading ("Hematology:"), if any.
        index: 0-based position among the criteria of the record.
        span: ``(start, end)`` character offsets of the criterion in the original text.
        heading: the innermost heading in force (e.g. "Exclusion Criteria: Recipients").
        population: ``donor`` for criteria under a donor heading (they are not about the patient).
        depth: nesting depth (0 for top-level items).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    section: Section
    text: str
    parent: str | None = None
    index: int
    span: tuple[int, int]
    heading: str | None = None
    population: Population = "patient"
    depth: int = Field(default=0, ge=0)


# --- unescaping with an offset map --------------------------------------------------------------

_ESCAPABLE = set("\\`*_{}[]()#+-.!<>=^~|")
_SPACES = {"\u00a0": " ", "\u2009": " ", "\u202f": " ", "\t": "    "}


def unescape(text: str) -> str:
    """Remove markdown backslash escapes (``\\>=`` becomes ``>=``, ``=\\<`` becomes ``=<``).

    Args:
        text: eligibility text as the registry gives it.

    Returns:
        The text without escapes; non-breaking spaces become spaces, tabs four spaces.
    """
    return _unescape_map(text)[0]


def _unescape_map(text: str) -> tuple[str, list[int]]:
    out: list[str] = []
    where: list[int] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in _ESCAPABLE:
            i += 1
            ch = text[i]
        rep = _SPACES.get(ch, ch)
        for c in rep:
            out.append(c)
            where.append(i)
        i += 1
    where.append(n)
    return "".join(out), where


# --- line classification -----------------------------------------------------------------------

_BULLET = re.compile(
    r"^(?P<marker>[*\-•·▪◦+o]|\d{1,2}(?:\.\d{1,2}){0,3}[.)]|\(\d{1,2}\)|\(?[a-zA-Z][.)]|"
    r"\(?(?:i{1,3}|iv|v|vi{1,3}|ix|x)[.)]|\(?(?:I{1,3}|IV|V|VI{1,3}|IX|X)[.)])\s+(?=\S)"
)
_NUMBERED_HEADING = re.compile(r"^\d+(?:\.\d+)*\.?\s+")
_HEADING_WORD = re.compile(
    r"\b(?:(?P<inc>inclusions?|eligibility|eligible)|(?P<exc>exclusions?|ineligib\w*|non-?inclusion))\b",
    re.IGNORECASE,
)
_CRITERIA_WORD = re.compile(r"\b(?:crit\w*|requirements?|characteristics)\b", re.IGNORECASE)
_INLINE_HEADING = re.compile(
    r"(?<=[.;!?)])[ \t]+(?=(?:key\s+|main\s+|major\s+|general\s+)?(?:inclusion|exclusion)\s+criteria\s*:)",
    re.IGNORECASE,
)
_PDQ_HEADING = re.compile(
    r"^(?:disease|patient)\s+characteristics|^prior\s+(?:concurrent\s+)?therapy", re.IGNORECASE
)
# PDQ (legacy NCI) paragraphs: "PATIENT CHARACTERISTICS: Age: 18 and over Performance status: ..."
_PDQ_INLINE = re.compile(
    r"^(?P<label>(?:disease|patient)\s+characteristics|prior\s+(?:concurrent\s+)?therapy)\s*:\s*(?=\S)",
    re.IGNORECASE,
)
_PDQ_LABEL = re.compile(
    r"(?<!\S)(?:Age|Sex|Menopausal\s+status|Performance\s+status|Life\s+expectancy|Hematopoietic|Hepatic|Renal|"
    r"Cardiovascular|Pulmonary|Neurologic|Immunologic|Gastrointestinal|Other|Biologic\s+therapy|Chemotherapy|"
    r"Endocrine\s+therapy|Radiotherapy|Surgery)\s*:"
)
_NON_CRITERIA_HEADING = re.compile(
    r"\b(?:screening\s+evaluation|evaluations?|study\s+procedures?|procedures|assessments?|"
    r"treatment\s+plan|study\s+design|follow[- ]up|schedule|outcome|endpoints?)\b",
    re.IGNORECASE,
)
_DONOR = re.compile(r"\bdonors?\b", re.IGNORECASE)
_RECIPIENT = re.compile(r"\b(?:recipients?|patients?|subjects?|participants?)\b", re.IGNORECASE)
_ABBREV = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|approx|dr|no|nos|incl|fig|ref|st|mr|mrs|ms|inc|ltd|al|ca|cf|min|max)\.|"
    r"\b[A-Z]\.)$",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.;])\s+(?=[A-Z(\"'])")


@dataclass
class _Item:
    indent: int
    depth: int
    start: int
    end: int
    parts: list[str]
    section: Section
    heading: str | None
    population: Population
    parent: _Item | None
    is_list: bool
    children: list[_Item] = field(default_factory=list)
    pdq: bool = False

    @property
    def text(self) -> str:
        return _collapse(" ".join(self.parts))


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _heading(content: str) -> tuple[Section, str] | None:
    """Recognise an eligibility section heading; returns its section and any trailing text."""
    words = content.split()
    if not words:
        return None
    if re.fullmatch(r"(?:eligibility\s+)?criteria\s*:?", content.strip(), re.IGNORECASE):
        return "inclusion", ""  # a legacy list headed "Criteria:" alone holds the requirements
    head, sep, rest = content.partition(":")
    head_words = head.split()
    body = head if sep else content
    if len(head_words) > 12 or len(body) > 120:
        return None
    match = _HEADING_WORD.search(body)
    if match is None:
        return None
    caps = body.upper() == body and any(c.isalpha() for c in body)
    if not (sep or caps or _CRITERIA_WORD.search(body)):
        return None
    if not _CRITERIA_WORD.search(body) and not caps and len(head_words) > 3:
        return None
    section: Section = (
        "exclusion"
        if _HEADING_WORD.search(body) and any(m.group("exc") for m in _HEADING_WORD.finditer(body))
        else "inclusion"
    )
    return section, rest.strip()


def _is_subheading(content: str) -> bool:
    """A short line ending with a colon ("Hematology:", "Disease-specific:") heads what follows."""
    text = content.strip()
    return text.endswith(":") and len(text.split()) <= 12 and len(text) <= 100


def _header_like(text: str) -> bool:
    """An item that only introduces its children ("Adequate organ function defined as:")."""
    t = text.strip()
    return t.endswith(":") and len(t.split()) <= 14


def split_criteria(text: str) -> list[CriterionText]:
    """Split eligibility text into criteria, in order.

    Args:
        text: the eligibility criteria of one record (API v2 markdown or legacy text).

    Returns:
        One :class:`CriterionText` per criterion. Items that only introduce a nested list
        ("Hematology:") are not criteria themselves: their text is the children's ``parent``,
        unless they have no children, in which case they are returned (so nothing is lost).
    """
    clean, where = _unescape_map(text)
    # legacy one-paragraph text: start a line at each inline heading (same length: offsets hold)
    clean = _INLINE_HEADING.sub(lambda m: "\n" + " " * (len(m.group(0)) - 1), clean)

    items: list[_Item] = []
    stack: list[_Item] = []
    section: Section = "unknown"
    heading: str | None = None
    population: Population = "patient"
    subheading: _Item | None = None
    last: _Item | None = None
    blank_before = False
    pos = 0
    for raw_line in clean.split("\n"):
        line_start = pos
        pos += len(raw_line) + 1
        if not raw_line.strip():
            blank_before = True
            continue
        indent = len(raw_line) - len(raw_line.lstrip(" "))
        stripped = raw_line.strip()
        bullet = _BULLET.match(stripped)
        content = stripped[bullet.end() :] if bullet else stripped
        content_start = line_start + indent + (bullet.end() if bullet else 0)
        heading_content = _NUMBERED_HEADING.sub("", content) if not bullet else content
        found = _heading(heading_content)
        if found is not None:
            section, rest = found
            heading = _collapse(heading_content.rstrip(":"))
            population = "donor" if _DONOR.search(heading) and not _RECIPIENT.search(heading) else "patient"
            stack.clear()
            subheading = None
            last = None
            blank_before = False
            if rest and (len(rest.split()) > 4 or re.search(r"\d", rest) or rest.endswith((".", ";"))):
                # legacy one-paragraph text: the criteria follow the heading on the same line
                offset = content_start + content.index(rest)
                items.extend(_paragraph(rest, offset, section, heading, population, None, 0))
            elif rest:
                heading = f"{heading}: {_collapse(rest.rstrip(':'))}"
                if _DONOR.search(rest) and not _RECIPIENT.search(rest):
                    population = "donor"
            continue
        pdq = _PDQ_INLINE.match(content) if not bullet and section in ("unknown", "inclusion") else None
        if pdq is not None:
            # a PDQ paragraph: the heading and its fields run on in one paragraph
            section = "inclusion"
            heading = _collapse(pdq.group("label")).upper()
            population = "patient"
            subheading = None
            paragraph = _Item(
                indent=indent,
                depth=0,
                start=content_start + pdq.end(),
                end=line_start + len(raw_line.rstrip()),
                parts=[content[pdq.end() :]],
                section=section,
                heading=heading,
                population=population,
                parent=None,
                is_list=False,
                pdq=True,
            )
            items.append(paragraph)
            stack[:] = [paragraph]
            last = paragraph
            blank_before = False
            continue
        if not bullet and _PDQ_HEADING.match(content) and _is_subheading(content) and section == "unknown":
            section = "inclusion"
            heading = _collapse(content.rstrip(":"))
            stack.clear()
            subheading = None
            last = None
            continue
        if not bullet and _is_subheading(content) and _NON_CRITERIA_HEADING.search(content) and indent <= 2:
            section = "unknown"
            heading = _collapse(content.rstrip(":"))
            population = "patient"
            stack.clear()
            subheading = None
            last = None
            continue

        # continuation of an open item: a non-bullet line indented under it
        if not bullet and last is not None:
            owner = _owner(stack, indent)
            if owner is not None and (not blank_before or indent > owner.indent):
                owner.parts.append(content)
                owner.end = line_start + len(raw_line.rstrip())
                blank_before = False
                continue
        blank_before = False

        if bullet:
            while stack and stack[-1].indent >= indent:
                stack.pop()
            parent = stack[-1] if stack else subheading
            depth = (parent.depth + 1) if parent is not None else 0
            item = _Item(
                indent=indent,
                depth=depth,
                start=content_start,
                end=line_start + len(raw_line.rstrip()),
                parts=[content],
                section=section,
                heading=heading,
                population=population,
                parent=parent,
                is_list=True,
            )
            if parent is not None:
                parent.children.append(item)
            items.append(item)
            stack.append(item)
            last = item
            continue

        # a plain line: subsection heading or a paragraph of criteria
        stack.clear()
        if _is_subheading(content):
            sub = _Item(
                indent=indent,
                depth=0,
                start=content_start,
                end=line_start + len(raw_line.rstrip()),
                parts=[content],
                section=section,
                heading=heading,
                population=population,
                parent=None,
                is_list=False,
            )
            if _DONOR.search(content) and not _RECIPIENT.search(content):
                sub.population = "donor"
            items.append(sub)
            subheading = sub
            last = None
            continue
        paragraph = _Item(
            indent=indent,
            depth=0,
            start=content_start,
            end=line_start + len(raw_line.rstrip()),
            parts=[content],
            section=section,
            heading=heading,
            population=subheading.population if subheading else population,
            parent=subheading,
            is_list=False,
        )
        if subheading is not None:
            subheading.children.append(paragraph)
        items.append(paragraph)
        stack.append(paragraph)
        last = paragraph

    return _emit(items, clean, where)


def _owner(stack: list[_Item], indent: int) -> _Item | None:
    for item in reversed(stack):
        if indent > item.indent or not item.is_list:
            return item
    return None


def _paragraph(
    text: str,
    offset: int,
    section: Section,
    heading: str | None,
    population: Population,
    parent: _Item | None,
    depth: int,
) -> list[_Item]:
    out: list[_Item] = []
    for start, end in _sentences(text):
        out.append(
            _Item(
                indent=0,
                depth=depth,
                start=offset + start,
                end=offset + end,
                parts=[text[start:end]],
                section=section,
                heading=heading,
                population=population,
                parent=parent,
                is_list=False,
            )
        )
    return out


def _sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of a paragraph (periods after abbreviations do not split)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()]
        if _ABBREV.search(before) or len(before.split()) < 3:
            continue
        spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def _emit(items: list[_Item], clean: str, where: list[int]) -> list[CriterionText]:
    out: list[CriterionText] = []
    for item in items:
        if item.children and (_header_like(item.text) or not item.is_list):
            continue
        pieces: list[tuple[int, int, str]]
        if item.pdq:
            # one criterion per PDQ field ("Age: 18 and over", "Hepatic: Bilirubin no greater than 2.0 mg/dL")
            raw = clean[item.start : item.end]
            cuts = [0, *(m.start() for m in _PDQ_LABEL.finditer(raw) if m.start() > 0), len(raw)]
            pieces = [
                (item.start + a, item.start + len(raw[:b].rstrip()), _collapse(raw[a:b]))
                for a, b in itertools.pairwise(cuts)
                if raw[a:b].strip()
            ]
        elif (not item.is_list and item.parent is None) or (not item.is_list and len(item.text) > 300):
            joined = item.text
            pieces = []
            raw = clean[item.start : item.end]
            for s, e in _sentences(raw):
                pieces.append((item.start + s, item.start + e, _collapse(raw[s:e])))
            if not pieces:
                pieces = [(item.start, item.end, joined)]
        else:
            pieces = [(item.start, item.end, item.text)]
        parent_text = item.parent.text if item.parent is not None else None
        for start, end, text in pieces:
            if not text or not re.search(r"[A-Za-z0-9]", text):
                continue
            out.append(
                CriterionText(
                    section=item.section,
                    text=text,
                    parent=parent_text,
                    index=len(out),
                    span=(where[start], where[end - 1] + 1 if end > start else where[start]),
                    heading=item.heading,
                    population=item.population,
                    depth=item.depth,
                )
            )
    return out
