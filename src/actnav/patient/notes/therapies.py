"""Prior therapies, regimens, transplants and responses read from a clinical note.

* Therapies (kind ``therapy``): the agents, brand names and regimen acronyms of
  ``terminology/drugs.yaml`` (Velcade is bortezomib; VAD is vincristine, doxorubicin and
  dexamethasone), plus note shorthand of ``data/notes/targets/therapies.yaml`` ("thal", "dex",
  "CAR-T"). ``concept`` is the agent or the regimen's name; a regimen's agents are in ``detail``;
  ``classes`` and ``anticancer`` come from drugs.yaml (pamidronate, calcitonin and corticosteroids
  are not anticancer and never count as a line); ``codes`` are the agents' RxNorm codes where
  drugs.yaml has them.
* Transplants (kind ``transplant``): value ``autologous``/``allogeneic``/``unknown``, read by
  :func:`actnav.patient.terminology.match_procedure` from the words.
* Order and dates: anticancer therapies and transplants about the patient are numbered in the
  order the note tells them (``order`` 1, 2, ...); a date written in the same clause ("in 2019",
  "March 2020", "05/2018") is the ``date``, with ``date_precision``.
* Responses (kind ``disease_status``): "refractory to lenalidomide", "progressed on
  pembrolizumab", "relapsed after R-CHOP", "lenalidomide-refractory": value ``refractory``,
  ``progression`` or ``relapse``, ``detail`` naming the drugs.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from functools import cache

from spacy.tokens import Doc, Span

from actnav.patient import terminology as term
from actnav.patient.models import Coding
from actnav.patient.notes.conditions import sentence_span, span_of
from actnav.patient.notes.model import NoteFact
from actnav.patient.notes.pipeline import flags

#: Words just after a drug's name that make it a device ("VAD placement", "insulin pump").
_DEVICE_WORDS = frozenset({"placement", "placed", "implant", "implantation", "implanted", "device", "pump"})
#: Words before "thal" that make it thalassaemia.
_THAL_DISEASE = frozenset({"alpha", "beta", "α", "β"})
_RESPONSE_LINKS = frozenset({"to", "on", "after", "despite", "following", "through", "while"})
_JOINERS = frozenset({"and", ",", "/", "+", "&", "plus", "with", "-", "or"})
_CLAUSE_BREAK = re.compile(
    r";|\bthen\b|\bfollowed by\b|\bsubsequently\b|\blater\b|\bafter which\b", re.IGNORECASE
)
#: Words of another event between a date and a therapy ("diagnosed in 2019, treated with ...").
_EVENT = re.compile(
    r"\b(?:diagnos\w*|present\w*|admitted|found|detected|biopsy|surgery|resect\w*)\b", re.IGNORECASE
)
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name} | {
    name.lower(): i for i, name in enumerate(calendar.month_abbr) if name
}
_DATE = re.compile(
    r"\b(?:(?P<month>"
    + "|".join(sorted(_MONTHS, key=len, reverse=True))
    + r")\.?,?\s+(?P<myear>(?:19|20)\d{2})"
    r"|(?P<mm>0?[1-9]|1[0-2])/(?P<nyear>(?:19|20)\d{2})"
    r"|(?P<iso>(?:19|20)\d{2})-(?P<isomm>0[1-9]|1[0-2])(?:-(?P<isodd>[0-2]\d|3[01]))?"
    r"|(?P<year>(?:19|20)\d{2}))\b",
    re.IGNORECASE,
)


@cache
def _agents() -> dict[str, term.Agent]:
    return {a.name: a for a in term.drugs().agents}


def _meta(ent: Span) -> dict[str, object]:
    rule = ent._.target_rule
    return dict(rule.metadata or {}) if rule is not None else {}


def _agents_of(ent: Span) -> tuple[str, ...]:
    meta = _meta(ent)
    agents = meta.get("agents")
    if isinstance(agents, tuple | list):
        return tuple(str(a) for a in agents)
    concept = meta.get("concept")
    return (concept,) if isinstance(concept, str) and concept in _agents() else ()


def _is_therapy(ent: Span) -> bool:
    if ent.label_ != "therapy":
        return False
    doc = ent.doc
    nxt = doc[ent.end].lower_ if ent.end < len(doc) else ""
    prev = doc[ent.start - 1].lower_ if ent.start > 0 else ""
    if nxt in _DEVICE_WORDS:
        return False
    return not (ent.text.lower() == "thal" and prev in _THAL_DISEASE)


def _rxnorm(agents: tuple[str, ...]) -> tuple[Coding, ...]:
    uri = next(s.uri for s in term.code_systems().systems if s.key == "rxnorm")
    out: list[Coding] = []
    for name in agents:
        agent = _agents().get(name)
        if agent is not None:
            out.extend(Coding(system=uri, code=code, display=name) for code in agent.rxnorm)
    return tuple(out)


def _date_of(m: re.Match[str]) -> tuple[dt.date, str] | None:
    try:
        if m["month"]:
            return dt.date(int(m["myear"]), _MONTHS[m["month"].lower()], 1), "month"
        if m["mm"]:
            return dt.date(int(m["nyear"]), int(m["mm"]), 1), "month"
        if m["iso"]:
            day = int(m["isodd"]) if m["isodd"] else 1
            return dt.date(int(m["iso"]), int(m["isomm"]), day), "day" if m["isodd"] else "month"
        return dt.date(int(m["year"]), 1, 1), "year"
    except ValueError:
        return None


def _clause_date(ent: Span, as_of: dt.date) -> tuple[dt.date, str] | None:
    """The date written next to a mention in its clause (clauses end at ";", "then", "followed
    by"...): just after it ("R-CHOP in 2015", up to 40 characters), else just before it ("In 2019
    she received R-CHOP", up to 30 characters) when it is not the date of another event
    ("diagnosed in 2019, treated with ...")."""
    sent = ent.sent
    text = ent.doc.text
    start, end = sent.start_char, sent.end_char
    for b in _CLAUSE_BREAK.finditer(text, sent.start_char, sent.end_char):
        if b.end() <= ent.start_char:
            start = b.end()
        elif b.start() >= ent.end_char:
            end = b.start()
            break
    after = [m for m in _DATE.finditer(text, ent.end_char, end) if m.start() - ent.end_char <= 40]
    before = [
        m
        for m in _DATE.finditer(text, start, ent.start_char)
        if ent.start_char - m.end() <= 30
        and not _EVENT.search(text, m.end(), ent.start_char)
        and not _EVENT.search(text, max(start, m.start() - 20), m.start())
    ]
    chosen = after[:1] or before[-1:]
    if not chosen:
        return None
    found = _date_of(chosen[0])
    return found if found is not None and found[0] <= as_of else None


def _dated(fact: NoteFact, ent: Span, as_of: dt.date) -> NoteFact:
    found = _clause_date(ent, as_of)
    if found is None:
        return fact
    return fact.model_copy(update={"date": found[0], "date_precision": found[1]})


def therapy_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """Therapies and regimens named in the note (kind ``therapy``), in note order.

    Returns facts with ``id=""``; anticancer ones about the patient carry ``order`` (shared with
    transplants, see :func:`transplant_facts`), dates not after ``as_of``.
    """
    out: list[NoteFact] = []
    for ent in doc.ents:
        if not _is_therapy(ent):
            continue
        meta = _meta(ent)
        concept = str(meta.get("concept") or ent.text)
        agents = _agents_of(ent)
        regimen = meta.get("regimen")
        if concept == "car_t":
            classes: tuple[str, ...] = ("car_t",)
            anticancer: bool | None = True
        else:
            classes = term.drug_classes(agents)
            anticancer = any(_agents()[a].anticancer for a in agents) if agents else None
        fact = NoteFact(
            id="",
            kind="therapy",
            label=str(regimen) if regimen else concept,
            span=span_of(ent),
            sentence=sentence_span(ent),
            concept=concept,
            codes=_rxnorm(agents),
            detail=" + ".join(agents) if regimen else None,
            classes=classes,
            anticancer=anticancer,
            **flags(ent),
        )
        out.append(_dated(fact, ent, as_of))
    return out


def transplant_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """Stem cell transplants (kind ``transplant``, value autologous/allogeneic/unknown).

    Returns facts with ``id=""``, dated like therapies.
    """
    out: list[NoteFact] = []
    for ent in doc.ents:
        if ent.label_ != "transplant":
            continue
        match = term.match_procedure([], [ent.text])
        value = (match.transplant if match is not None else None) or "unknown"
        label = {
            "autologous": "autologous stem cell transplant",
            "allogeneic": "allogeneic stem cell transplant",
        }
        fact = NoteFact(
            id="",
            kind="transplant",
            label=label.get(value, "stem cell transplant"),
            span=span_of(ent),
            sentence=sentence_span(ent),
            value=value,
            **flags(ent),
        )
        out.append(_dated(fact, ent, as_of))
    return out


def order_treatments(facts: list[NoteFact]) -> list[NoteFact]:
    """Number anticancer therapies and transplants about the patient in note order (1, 2, ...).

    Supportive drugs, and facts not about the patient, get no order.
    """
    n = 0
    out: list[NoteFact] = []
    for fact in sorted(facts, key=lambda f: f.span.start):
        counts = fact.about_patient and (
            fact.kind == "transplant" or (fact.kind == "therapy" and fact.anticancer is True)
        )
        if counts:
            n += 1
            fact = fact.model_copy(update={"order": n})
        out.append(fact)
    return out


def treatment_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """Therapies and transplants together, numbered by :func:`order_treatments`."""
    return order_treatments(therapy_facts(doc, as_of) + transplant_facts(doc, as_of))


def response_facts(doc: Doc, as_of: dt.date) -> list[NoteFact]:
    """Responses to named therapies (kind ``disease_status``, ``detail`` the drugs).

    "refractory to lenalidomide and bortezomib", "progressed on pembrolizumab", "relapsed after
    R-CHOP", "lenalidomide-refractory". Facts have ``id=""``; ``as_of`` is unused.
    """
    del as_of
    out: list[NoteFact] = []
    ents = list(doc.ents)
    for i, ent in enumerate(ents):
        if ent.label_ != "disease_status":
            continue
        value = str(_meta(ent).get("value") or "")
        if value not in ("relapse", "refractory", "progression"):
            continue
        drugs = _drugs_after(ent, ents[i + 1 :]) or _drugs_before(ent, ents[:i])
        if not drugs:
            continue
        start = min(ent.start_char, drugs[0].start_char)
        end = max(ent.end_char, drugs[-1].end_char)
        names = ", ".join(dict.fromkeys(str(_meta(d).get("concept") or d.text) for d in drugs))
        words = {"refractory": "refractory to", "progression": "progression on", "relapse": "relapse after"}
        fact = NoteFact(
            id="",
            kind="disease_status",
            label=f"{words[value]} {names}",
            span=span_of(doc.char_span(start, end, alignment_mode="expand") or ent),
            sentence=sentence_span(ent),
            value=value,
            detail=names,
            **flags(ent),
        )
        out.append(fact)
    return out


def _drugs_after(ent: Span, later: list[Span]) -> list[Span]:
    """Therapies right after "refractory to" / "progressed on", joined by and / , / +."""
    doc = ent.doc
    if ent.end >= len(doc) or doc[ent.end].lower_ not in _RESPONSE_LINKS:
        return []
    pos = ent.end + 1
    if pos < len(doc) and doc[pos].lower_ in {"on", "treatment", "therapy", "with"}:
        pos += 1  # "while on", "after treatment with"
    drugs: list[Span] = []
    for e in later:
        if e.sent != ent.sent or e.start > pos + 1:
            break
        if not _is_therapy(e):
            break
        drugs.append(e)
        pos = e.end
        while pos < len(doc) and doc[pos].lower_ in _JOINERS:
            pos += 1
    return drugs


def _drugs_before(ent: Span, earlier: list[Span]) -> list[Span]:
    """ "lenalidomide-refractory", "bortezomib refractory": the therapy just before the status."""
    if not earlier or _meta(ent).get("value") != "refractory":
        return []
    last = earlier[-1]
    doc = ent.doc
    between = [t.lower_ for t in doc[last.end : ent.start]]
    if _is_therapy(last) and last.sent == ent.sent and all(w == "-" for w in between):
        return [last]
    return []
