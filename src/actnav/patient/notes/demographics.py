"""Age and sex read from a clinical note.

Age: "64yo", "64-year-old", "64 y/o", "aged 64", "48 M", "a 3-month-old" (rules in
``data/notes/targets/demographics.yaml``), as years in ``number`` with unit ``a`` (UCUM annum):
months / 12, weeks x 7 / 365.25, days / 365.25. An age "at" or "since" an event ("diagnosed at age
50") is not the patient's age and is skipped. Sex: woman, man, female, male, girl, boy, lady,
gentleman, and the capital M/F of "48 M" or "22yo F" written at the start of the description.
Pronouns decide only when no word does, and only when the note uses at least two pronouns of one
sex and none of the other (precision first).

Of the facts about the patient, only the first age and the first sex are kept; mentions about
someone else (a relative) are kept for the reviewer and never become patient facts.
"""

from __future__ import annotations

import datetime as dt
import re

from spacy.tokens import Doc, Span

from actnav.patient.notes.conditions import sentence_span, span_of
from actnav.patient.notes.model import NoteFact
from actnav.patient.notes.model import Span as TextSpan
from actnav.patient.notes.pipeline import flags

#: Words that, just before an age, make it the age at an event rather than now.
_EVENT_WORDS = frozenset({"at", "since", "until", "when", "by", "before", "after", "from", "between"})
_MAX_YEARS = 125
#: A relative named right after an age ("her 70-year-old father") is whose age it is; medspacy's
#: FAMILY rule only looks forward from the relative.
_RELATIVES = frozenset(
    {"mother", "father", "sister", "brother", "son", "daughter", "aunt", "uncle", "grandmother",
     "grandfather", "cousin", "husband", "wife", "spouse", "partner", "sibling", "niece", "nephew",
     "mom", "dad", "child", "baby", "donor"}
)  # fmt: skip
_SEX_LETTER = {"F": "female", "M": "male"}
_PRONOUNS = {
    "female": frozenset({"she", "her", "hers", "herself"}),
    "male": frozenset({"he", "him", "his", "himself"}),
}


def _years(kind: str, n: int) -> float:
    if kind == "months":
        return n / 12
    if kind == "weeks":
        return n * 7 / 365.25
    if kind == "days":
        return n / 365.25
    return float(n)


def _event_age(ent: Span) -> bool:
    doc = ent.doc
    before = [t.lower_ for t in doc[max(ent.sent.start, ent.start - 2) : ent.start]]
    return any(w in _EVENT_WORDS for w in before)


def _starts_description(ent: Span) -> bool:
    """The age opens the description: "48 M with...", "Pt is a 22yo F", "A 75 yo M"."""
    doc = ent.doc
    if ent.start - ent.sent.start <= 1:
        return True
    prev = doc[ent.start - 1].lower_
    return prev in {"a", "an", "is", "pt", "patient"}


def age_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """The patient's age (kind ``age``; ``number`` in years, unit ``a``), and ages of others.

    Facts have ``id=""``; ``as_of`` is unused (the note states the age as of its writing).
    """
    del as_of
    out: list[NoteFact] = []
    seen_patient = False
    for ent in doc.ents:
        if ent.label_ != "age":
            continue
        rule = ent._.target_rule
        kind = str((rule.metadata or {}).get("value") or "years")
        if kind == "years_sex":
            letter = ent.text.rstrip()[-1]
            if letter not in _SEX_LETTER or not _starts_description(ent):
                continue
        number = re.search(r"\d{1,3}", ent.text)
        if number is None or _event_age(ent):
            continue
        years = _years(kind, int(number.group(0)))
        if years > _MAX_YEARS:
            continue
        unit_words = {"months": "months", "weeks": "weeks", "days": "days"}.get(kind, "years")
        context = flags(ent)
        if ent.end < len(doc) and doc[ent.end].lower_ in _RELATIVES:
            context["family"] = True
        fact = NoteFact(
            id="",
            kind="age",
            label=f"age {number.group(0)} {unit_words}",
            span=span_of(ent),
            sentence=sentence_span(ent),
            number=round(years, 4),
            unit="a",
            original=ent.text,
            **context,
        )
        if fact.about_patient:
            if seen_patient:
                continue
            seen_patient = True
        out.append(fact)
    return out


def sex_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """The patient's sex (kind ``sex``, value ``female``/``male``), and sex words about others.

    Facts have ``id=""``; ``as_of`` is unused.
    """
    del as_of
    found: list[NoteFact] = []
    for ent in doc.ents:
        value: str | None = None
        if ent.label_ == "sex":
            value = str((ent._.target_rule.metadata or {}).get("value") or "") or None
        elif ent.label_ == "age" and (ent._.target_rule.metadata or {}).get("value") == "years_sex":
            letter = ent.text.rstrip()[-1]
            if letter in _SEX_LETTER and _starts_description(ent):
                value = _SEX_LETTER[letter]
        if value not in ("female", "male"):
            continue
        found.append(
            NoteFact(
                id="",
                kind="sex",
                label=value,
                span=span_of(ent),
                sentence=sentence_span(ent),
                value=value,
                **flags(ent),
            )
        )
    patient = [f for f in found if f.about_patient]
    others = [f for f in found if not f.about_patient]
    if patient:
        return [patient[0], *others]
    pronoun = _from_pronouns(doc)
    return [*([pronoun] if pronoun is not None else []), *others]


def _from_pronouns(doc: Doc) -> NoteFact | None:
    counts = {sex: [t for t in doc if t.lower_ in words] for sex, words in _PRONOUNS.items()}
    female, male = counts["female"], counts["male"]
    if len(female) >= 2 and not male:
        value, first = "female", female[0]
    elif len(male) >= 2 and not female:
        value, first = "male", male[0]
    else:
        return None
    sent = first.sent
    return NoteFact(
        id="",
        kind="sex",
        label=f"{value} (from pronouns)",
        span=TextSpan(start=first.idx, end=first.idx + len(first.text), text=first.text),
        sentence=TextSpan(start=sent.start_char, end=sent.end_char, text=sent.text),
        value=value,
    )
