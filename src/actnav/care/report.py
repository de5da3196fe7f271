"""Render an :class:`~actnav.eligibility.report_model.Evaluation` for people and programs.

Three forms of the same report:

* :func:`render_json`: the evaluation as JSON (the published schema, ``schemas/evaluation.schema.json``).
* :func:`render_html`: a self-contained page for the care team (inline CSS, no external assets,
  no scripts, prints well): verdicts first (eligible, needs information, not eligible), then every
  criterion with its evidence and source, the trial-derived fitness context, the matched trials,
  the work-up checklist and everything actnav could not decide. What cannot apply to the patient
  (not-eligible indications, label notes of products with no possible indication, trials below
  the best few) is one ``<details>`` line each, opened on demand: nothing is left off the page.
* :func:`render_text`: a short plain-text summary for a terminal (symbols in ASCII).

The matched clinical trials appear in all three (``Evaluation.trials``); ``actnav match`` has its own
forms of a :class:`~actnav.eligibility.report_model.TrialMatchReport`: :func:`render_match_json`,
:func:`render_match_html`, :func:`render_match_text` and :func:`render_match_summary`.

Rendering is pure: no I/O besides reading the packaged templates, no clock (the dates shown are
the evaluation's own). Templates are Jinja2 with autoescaping on for everything except the
plain-text template, so a criterion text such as ``<script>`` reaches the page escaped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any, get_args

from actnav.eligibility.engine import CriterionResult, Result
from actnav.eligibility.report_model import (
    Evaluation,
    IndicationResult,
    PatientSummary,
    ProductResult,
    TrialMatchReport,
    TrialMatchResult,
    Verdict,
    WorkupItemResult,
)
from actnav.knowledge.models import WorkupStep

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup
    from pydantic import BaseModel

__all__ = [
    "DISCLAIMER_HEADLINE",
    "FITNESS_BANNER",
    "render_html",
    "render_json",
    "render_match_html",
    "render_match_json",
    "render_match_summary",
    "render_match_text",
    "render_summary",
    "render_text",
    "schema_json",
]

DISCLAIMER_HEADLINE = "actnav supports clinicians, it does not replace them."
#: The report header for a patient read from a clinical note (``PatientSummary.from_note``).
NOTE_BANNERS: dict[str, str] = {
    "unreviewed": "Patient read from a clinical note without review: every fact was read by machine; "
    'criteria marked "from note" rest on the words quoted (unconfirmed).',
    "reviewed": "Patient read from a clinical note, facts reviewed by a person: criteria marked "
    '"from note" rest on the words quoted.',
}
FITNESS_BANNER = "Trial-derived context — not label requirements"

VERDICT_LABELS: dict[str, str] = {
    Verdict.ELIGIBLE: "eligible",
    Verdict.NOT_ELIGIBLE: "not eligible",
    Verdict.NEEDS_INFORMATION: "needs information",
}
RESULT_LABELS: dict[str, str] = {
    Result.MET: "met",
    Result.NOT_MET: "not met",
    Result.UNKNOWN: "unknown",
}
NOTE_KINDS: dict[str, str] = {
    "boxed_warning": "Boxed warning",
    "monitoring": "Monitoring",
    "rems": "REMS",
}

# Work-up steps in the order an evaluation runs them (the order of the WorkupStep literal,
# which is the order of ``workup.yaml``); a step the catalogue does not know goes last.
STEP_ORDER: tuple[str, ...] = get_args(WorkupStep)

# The evaluation's HTML report shows this many trials in full (the best ranked that are not
# already not eligible); the others are one collapsed line each, opened on demand.
TRIALS_SHOWN_IN_FULL = 3
# A collapsed line quotes the first reason up to this many characters (the block holds it whole).
SUMMARY_REASON_CHARS = 180
# ISO dates (and date-times) in free text: kept on one line in the HTML report.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?")

# Characters the text report meets often, mapped to ASCII (the rest go through NFKD).
_ASCII_MAP = str.maketrans(
    {
        "—": "-",
        "–": "-",
        "‐": "-",
        "−": "-",
        "≥": ">=",
        "≤": "<=",
        "≠": "!=",
        "×": "x",
        "µ": "u",
        "μ": "u",
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "…": "...",
        "•": "*",
        "→": "->",
        "±": "+/-",
        "°": " deg ",
        "\u00a0": " ",
    }
)


def render_json(ev: Evaluation) -> str:
    """The evaluation as indented JSON, exactly the published schema's shape.

    Args:
        ev: the evaluation to render.

    Returns:
        JSON text (2-space indent, no trailing newline).
    """
    return ev.model_dump_json(indent=2)


def render_html(ev: Evaluation, *, app_header: Markup | None = None) -> str:
    """The full report as one self-contained HTML page for the care team.

    Args:
        ev: the evaluation to render.
        app_header: markup placed first in the body (the web application's navigation bar);
            None for the standalone report.

    Returns:
        An HTML5 document with inline CSS and no external assets (the header may link some).
    """
    return _environment().get_template("report.html.j2").render({**_context(ev), "app_header": app_header})


def render_text(ev: Evaluation) -> str:
    """A terminal summary (about 30-60 lines), plain ASCII.

    Args:
        ev: the evaluation to render.

    Returns:
        Text ending in a newline: patient line, one verdict line (and its first reason) per
        indication, the work-up list and the disclaimer.
    """
    text = _environment().get_template("report.txt.j2").render(_context(ev))
    return to_ascii(text)


def render_summary(ev: Evaluation) -> str:
    """A few lines for a terminal when the full report went to a file.

    Args:
        ev: the evaluation to summarise.

    Returns:
        ASCII text ending in a newline: the patient line, one line per eligible or
        needs-information indication, the count of each verdict, the number of work-up items
        and the disclaimer's headline.
    """
    counts = _verdict_counts(ev)
    lines = [_patient_line(ev)]
    if ev.patient.deceased:
        lines.append("  DECEASED: verdicts are for review only")
    for product in ev.products:
        for ind in product.indications:
            if ind.verdict is not Verdict.NOT_ELIGIBLE:
                tag = f"[{VERDICT_LABELS[ind.verdict]}]"
                lines.append(_clip(f"  {tag:<20}{product.product} ({product.brand}): {ind.name}"))
    lines.append(
        f"  {counts[Verdict.ELIGIBLE]} eligible, {counts[Verdict.NEEDS_INFORMATION]} need information,"
        f" {counts[Verdict.NOT_ELIGIBLE]} not eligible; {len(ev.workup)} work-up item(s)."
    )
    lines.append(f"  {_disclaimer(ev)[0]}")
    return to_ascii("\n".join(lines) + "\n")


def render_match_json(rep: TrialMatchReport) -> str:
    """The trial matches of ``actnav match`` as indented JSON (the :class:`TrialMatchReport` shape)."""
    return rep.model_dump_json(indent=2)


def render_match_html(rep: TrialMatchReport) -> str:
    """The trial matches as one self-contained HTML page (inline CSS, no external assets)."""
    context = {
        "rep": rep,
        "Result": Result,
        "Verdict": Verdict,
        "patient_line": _patient_line_of(rep.patient, rep.as_of),
        "disclaimer": _split_disclaimer(rep.disclaimer),
    }
    return _environment().get_template("match.html.j2").render(context)


def render_match_text(rep: TrialMatchReport) -> str:
    """The trial matches for a terminal, plain ASCII: one block per trial (verdict, score, why
    listed, counts, the first reasons and what would settle the unknowns)."""
    search = rep.search
    where = "the trial database" if search.source == "database" else "the bundled offline records"
    filters = [f"status {', '.join(search.statuses)}"] if search.statuses else []
    if search.modality:
        filters.append(f"modality {search.modality}")
    if search.near:
        radius = f" within {search.radius_km:g} km" if search.radius_km is not None else ""
        filters.append(f"near {search.near}{radius}")
    lines = [
        f"actnav trial matches as of {rep.as_of.isoformat()}",
        _patient_line_of(rep.patient, rep.as_of),
        f"{search.trials_checked} trial(s) checked from {where}"
        + (" (adoptive cell therapy only)" if search.act_only else "")
        + (f"; {'; '.join(filters)}" if filters else "")
        + f"; best {search.trials_shown} shown.",
        "",
    ]
    for n, t in enumerate(rep.trials, 1):
        lines += _trial_block(n, t)
    if not rep.trials:
        lines.append("  No trial to show.")
    head, rest = _split_disclaimer(rep.disclaimer)
    lines += ["", head]
    if rest:
        lines.append(rest)
    return to_ascii("\n".join(lines) + "\n")


def render_match_summary(rep: TrialMatchReport) -> str:
    """A few lines when the matches went to a file: the patient, the counts by verdict, the top trials."""
    counts = dict.fromkeys(VERDICT_LABELS, 0)
    for t in rep.trials:
        counts[t.verdict] += 1
    lines = [_patient_line_of(rep.patient, rep.as_of)]
    lines += _trial_lines(rep.trials[:5])
    lines.append(
        f"  {rep.search.trials_checked} checked; of the {len(rep.trials)} shown: "
        f"{counts[Verdict.ELIGIBLE]} eligible, "
        f"{counts[Verdict.NEEDS_INFORMATION]} need information, {counts[Verdict.NOT_ELIGIBLE]} not eligible."
    )
    return to_ascii("\n".join(lines) + "\n")


def _trial_head(t: TrialMatchResult) -> str:
    tag = f"[{VERDICT_LABELS[t.verdict].upper()}]"
    what = " ".join(p for p in (t.modality or "not ACT", ", ".join(t.targets)) if p)
    site = t.nearest_site
    dist = f"  {site.distance_km:.0f} km" if site and site.distance_km is not None else ""
    return f"{tag:<20}{t.score:5.1f}  {t.nct_id}  {what}  {t.overall_status or '-'}{dist}"


def _trial_lines(trials: list[TrialMatchResult]) -> list[str]:
    """Two lines per trial for the evaluation's text report: verdict line, then title and first reason."""
    lines: list[str] = []
    for t in trials:
        lines.append(_clip(f"  {_trial_head(t)}  {t.title}"))
        if t.reasons:
            more = f" (+{len(t.reasons) - 1} more)" if len(t.reasons) > 1 else ""
            lines.append(_clip(f"{'':22}- {t.reasons[0]}{more}"))
    return lines


def _trial_block(n: int, t: TrialMatchResult) -> list[str]:
    lines = [_clip(f"{n:>2}. {_trial_head(t)}"), _clip(f"    {t.title}"), f"    {t.url}"]
    for why in t.why_listed:
        lines.append(_clip(f"    why: {why}"))
    c = t.counts
    lines.append(
        f"    criteria: {c.get('met', 0)} met, {c.get('not_met', 0)} not met, {c.get('unknown', 0)} unknown "
        f"({c.get('needs_review', 0)} need review)"
    )
    label = "not met" if t.verdict is Verdict.NOT_ELIGIBLE else "unknown"
    for reason in t.reasons[:3]:
        lines.append(_clip(f"    {label}: {reason}"))
    if len(t.reasons) > 3:
        more = len(t.reasons) - 3
        lines.append(f"    ... {more} more (--format html shows every criterion beside its text)")
    for item in t.workup:
        lines.append(_clip(f"    [ ] {item.text} ({len(item.settles)} criteria)"))
    lines.append("")
    return lines


def schema_json(model: type[BaseModel]) -> str:
    """The JSON Schema of a pydantic model, as published under ``schemas/``.

    Args:
        model: the pydantic model class (``Evaluation``, ``Product``).

    Returns:
        The schema as JSON text, 2-space indent, keys in model order, ending in a newline.
    """
    return json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def to_ascii(text: str) -> str:
    """Replace typographic symbols by ASCII look-alikes (``≥`` -> ``>=``, ``—`` -> ``-``).

    Letters of any script are kept as they are (a French or Greek diagnosis must survive the
    terminal report); only the symbols in the map are replaced.

    Args:
        text: any text.

    Returns:
        The text with typographic symbols in ASCII.
    """
    return text.translate(_ASCII_MAP)


# --- template plumbing -------------------------------------------------------------------------


def _autoescape(template_name: str | None) -> bool:
    # Escaping is on by default (HTML, and any template added later); only the plain-text
    # report opts out, because "&lt;" in a terminal would be wrong, not safe.
    return not (template_name or "").endswith(".txt.j2")


@cache
def _environment() -> jinja2.Environment:
    """The Jinja2 environment, created on first use and then reused."""
    import jinja2  # here, not at module level: JSON output and the CLI start without it

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("actnav.care", "templates"),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["verdict_label"] = lambda v: VERDICT_LABELS.get(str(v), str(v))
    env.filters["result_label"] = lambda r: RESULT_LABELS.get(str(r), str(r))
    env.filters["needs_text"] = _needs_text
    env.filters["typed_leaves"] = _typed_leaves
    env.filters["safe_url"] = _safe_url
    env.filters["fmt_value"] = _fmt_value
    env.filters["dates"] = _nowrap_dates
    env.filters["clip"] = _clip_words
    env.filters["beside"] = _beside
    env.filters["trial_reasons"] = _trial_reasons
    env.filters["clip_reason"] = _clip_reason
    env.filters["note_kind"] = lambda kind: NOTE_KINDS.get(
        str(kind), str(kind).replace("_", " ").capitalize()
    )
    return env


def _needs_text(criterion: CriterionResult) -> str:
    """What would settle an unknown criterion, always starting with ``unknown: needs``."""
    needs = (criterion.needs or "").strip()
    if not needs:
        return "unknown: needs information (no detail given)"
    return needs if needs.startswith("unknown:") else f"unknown: needs {needs}"


def _typed_leaves(criterion: CriterionResult) -> list[CriterionResult]:
    """The typed leaves under a criterion (review leaves left out: their text is the criterion's),
    so a trial criterion shows what was checked beside the original text."""
    leaves = [c for c in _walk([criterion]) if not c.children]
    typed = [c for c in leaves if not (c.needs or "").startswith("unknown: needs review:")]
    if len(leaves) == 1 and leaves[0] is criterion:
        return []
    return typed


def _safe_url(url: str | None) -> str | None:
    """Only http(s) links are rendered as links (a data file must not inject ``javascript:``)."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


def _nowrap_dates(text: object) -> Markup:
    """Escape ``text`` and keep each ISO date in it on one line (``<span class="date">``).

    A narrow column must not break "2023-02-06" after a hyphen. The text is escaped first, so
    the only markup in the result is the span this filter adds.
    """
    from markupsafe import Markup, escape

    escaped = str(escape(_fmt_value(text)))
    return Markup(_ISO_DATE.sub(lambda m: f'<span class="date">{m.group(0)}</span>', escaped))


# How a needs text refers to the criterion text printed beside it (trial criteria table).
BESIDE = "[the criterion as written, at left]"
# How a trial reason refers back to a criterion text it has already quoted.
AS_ABOVE = "[as written above]"
# Shorter texts are left in place: they are quick to read and could occur by chance.
_BESIDE_MIN_CHARS = 40
# Where a reason's verdict part starts ("<criterion>: not met (found: ...)").
_REASON_RESULT = re.compile(r": (?:not met|unknown)\b")


def _beside(needs: str, written: str | None) -> str:
    """``needs`` without a verbatim copy of ``written``, the criterion text shown beside it.

    A trial criterion actnav could not read says ``unknown: needs review: <its whole text>``;
    next to the same text in the table, the copy is replaced by a pointer to it. Anything the
    needs text adds (``[not typed: ...]``, other needs) is kept.
    """
    text = (written or "").strip()
    if len(text) < _BESIDE_MIN_CHARS or text not in needs:
        return needs
    return needs.replace(text, BESIDE)


def _trial_reasons(trial: TrialMatchResult) -> list[str]:
    """A trial's reasons, each quoting its criterion text once.

    A reason reads ``<section>: <text>: unknown: needs review: <text> ...``; the repeat of a
    criterion's text (40 characters or more) becomes :data:`AS_ABOVE`, the rest is kept.
    """
    texts = sorted(
        {row.text.strip() for row in trial.criteria if len(row.text.strip()) >= _BESIDE_MIN_CHARS},
        key=len,
        reverse=True,
    )
    out: list[str] = []
    for reason in trial.reasons:
        for text in texts:
            first = reason.find(text)
            if first >= 0 and reason.find(text, first + len(text)) >= 0:
                end = first + len(text)
                reason = reason[:end] + reason[end:].replace(text, AS_ABOVE)
        out.append(reason)
    return out


def _clip_reason(text: str, width: int = SUMMARY_REASON_CHARS) -> str:
    """A reason cut to about ``width`` characters for a one-line summary, keeping its verdict.

    ``<criterion>: not met (found: ...)``: the criterion part is shortened first, so the line
    still says what was not met and what the record holds.
    """
    if len(text) <= width:
        return text
    match = _REASON_RESULT.search(text)
    if not match:
        return _clip_words(text, width)
    head, tail = text[: match.start()], text[match.start() :]
    head = _clip_words(head, max(width - len(tail), width // 3))
    return head + _clip_words(tail, max(width - len(head), width // 3))


def _clip_words(text: str, width: int = SUMMARY_REASON_CHARS) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, with an ellipsis if cut."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    head = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return head.rstrip(" ,;:") + "…"


def _fmt_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass
class _Settled:
    """A criterion a work-up item settles, with where it appears."""

    id: str
    text: str
    contexts: list[str] = field(default_factory=list)


@dataclass
class _WorkupEntry:
    item: WorkupItemResult
    settles: list[_Settled]


@dataclass
class _StepGroup:
    step: str
    name: str
    items: list[_WorkupEntry]


@dataclass
class _Unknown:
    """An unknown leaf criterion and where it is.

    ``decisive`` is False inside an indication that is already not eligible: settling it would
    not change the verdict.
    """

    context: str
    criterion: CriterionResult
    trial_derived: bool
    decisive: bool


@dataclass(frozen=True)
class _IndicationView:
    """An indication as the HTML report lays it out.

    ``collapsed`` for a not-eligible indication: one line (product, indication, first failed
    criterion) that opens on every criterion. ``first_reason`` is that criterion and ``more``
    the number of further reasons.
    """

    product: ProductResult
    ind: IndicationResult
    collapsed: bool
    first_reason: str
    more: int


@dataclass(frozen=True)
class _ProductView:
    """A product of the "criteria by product" section.

    ``possible`` when one of its indications is eligible or needs information: its label notes
    (boxed warnings, monitoring, REMS) are then shown in full, else in a collapsed block.
    """

    product: ProductResult
    possible: bool
    indications: list[_IndicationView]


@dataclass(frozen=True)
class _VerdictGroup:
    """Rows of the verdict table with one verdict (``verdict`` None: products with no indication)."""

    verdict: Verdict | None
    title: str
    rows: list[_IndicationView]
    products: list[ProductResult]


def _first_reason(ind: IndicationResult) -> str:
    """The first reason of a verdict: the first criterion not met (or unknown), as the engine wrote it."""
    if ind.reasons:
        return ind.reasons[0]
    wanted = Result.NOT_MET if ind.verdict is Verdict.NOT_ELIGIBLE else Result.UNKNOWN
    for criterion in _walk(ind.criteria):
        if criterion.result is wanted and not criterion.children:
            return f"{criterion.text}: {RESULT_LABELS[wanted]}"
    return ""


def _indication_view(product: ProductResult, ind: IndicationResult) -> _IndicationView:
    more = max(len(ind.reasons) - 1, 0)
    return _IndicationView(product, ind, ind.verdict is Verdict.NOT_ELIGIBLE, _first_reason(ind), more)


def _rank(ind: IndicationResult) -> int:
    return _VERDICT_RANK.get(ind.verdict, len(_VERDICT_RANK))


def _verdict_groups(ev: Evaluation) -> list[_VerdictGroup]:
    """The verdict table's rows: eligible, then needs information, then not eligible, each by
    product name (an indication keeps its label order within a product); products with no
    indication in force come last. Empty groups are left out."""
    by_product = sorted(ev.products, key=lambda p: (p.product.casefold(), p.brand.casefold()))
    groups: list[_VerdictGroup] = []
    for verdict in (Verdict.ELIGIBLE, Verdict.NEEDS_INFORMATION, Verdict.NOT_ELIGIBLE):
        rows = [
            _indication_view(product, ind)
            for product in by_product
            for ind in product.indications
            if ind.verdict is verdict
        ]
        if rows:
            groups.append(_VerdictGroup(verdict, VERDICT_LABELS[verdict].capitalize(), rows, []))
    idle = [product for product in by_product if not product.indications]
    if idle:
        groups.append(_VerdictGroup(None, "No indication in force", [], idle))
    return groups


def _product_views(ev: Evaluation) -> list[_ProductView]:
    """Products for the criteria section: those with an eligible or needs-information indication
    first (best verdict, then name), then the others by name. Within a product, the possible
    indications come first; the not-eligible ones follow, collapsed."""
    views: list[_ProductView] = []
    for product in ev.products:
        inds = sorted(product.indications, key=_rank)  # stable: label order within a verdict
        possible = any(ind.verdict is not Verdict.NOT_ELIGIBLE for ind in inds)
        views.append(_ProductView(product, possible, [_indication_view(product, ind) for ind in inds]))

    def order(view: _ProductView) -> tuple[int, int, str, str]:
        best = min((_rank(i.ind) for i in view.indications), default=len(_VERDICT_RANK))
        return (
            0 if view.possible else 1,
            best if view.possible else 0,
            view.product.product.casefold(),
            view.product.brand,
        )

    return sorted(views, key=order)


def _trials_in_full(ev: Evaluation) -> list[str]:
    """NCT ids of the trials shown in full: the best ranked that are not already not eligible."""
    possible = [t.nct_id for t in ev.trials if t.verdict is not Verdict.NOT_ELIGIBLE]
    return possible[:TRIALS_SHOWN_IN_FULL]


def _walk(criteria: list[CriterionResult]) -> list[CriterionResult]:
    out: list[CriterionResult] = []
    for criterion in criteria:
        out.append(criterion)
        out.extend(_walk(criterion.children))
    return out


@dataclass(frozen=True)
class _Tree:
    """A criterion tree of the report: whose it is and a display label.

    ``owners`` are the prefixes a work-up reference may use for this tree: the indication id
    (or fitness trial id), and ``<product id>/<indication id>``.
    """

    owners: tuple[str, ...]
    context: str
    criteria: list[CriterionResult]
    trial_derived: bool
    decided: bool = False


def _trees(ev: Evaluation) -> list[_Tree]:
    """Every criterion tree in the report, labelled with where it belongs."""
    trees: list[_Tree] = []
    for product in ev.products:
        for ind in product.indications:
            label = f"{product.product} ({product.brand}): {ind.name}"
            owners = (ind.id, f"{product.id}/{ind.id}")
            decided = ind.verdict is Verdict.NOT_ELIGIBLE
            trees.append(_Tree(owners, label, ind.criteria, False, decided))
    for trial in ev.fitness:
        trees.append(_Tree((trial.id,), f"{trial.trial} (trial fitness)", trial.criteria, True))
    return trees


_Found = tuple[CriterionResult, str]


def _criterion_paths(ev: Evaluation) -> dict[str, list[_Found]]:
    """Criterion lookup for work-up ``settles`` references: every (criterion, context) matching.

    A work-up item names what it settles as ``<owner>/<criterion id>`` or
    ``<owner>/<top criterion id>/<leaf id>`` (see ``actnav.eligibility.evaluate``), where the
    owner is an indication or trial id, optionally prefixed by the product id; a bare criterion
    id is accepted too. Indication ids repeat across products (``lbcl-after-2-lines``), so one
    reference can match several trees: all matches are kept.
    """
    paths: dict[str, list[_Found]] = {}
    for tree in _trees(ev):
        keys: list[tuple[str, CriterionResult]] = []
        for top in tree.criteria:
            keys += [(f"{owner}/{top.id}", top) for owner in tree.owners]
            for node in _walk(top.children):
                keys += [(f"{owner}/{top.id}/{node.id}", node) for owner in tree.owners]
        keys += [(node.id, node) for node in _walk(tree.criteria)]
        for key, node in keys:
            found = paths.setdefault(key, [])
            if not any(seen is node and ctx == tree.context for seen, ctx in found):
                found.append((node, tree.context))
    return paths


def _settled(refs: list[str], paths: dict[str, list[_Found]]) -> list[_Settled]:
    """The criteria a work-up item settles, one entry per criterion with every place it occurs.

    Only places where the criterion is unknown are named (that is what a work-up settles),
    unless a reference matches no unknown criterion at all.
    """
    merged: dict[tuple[str, str], _Settled] = {}
    for ref in refs:
        matches = paths.get(ref, [])
        unknown = [(node, ctx) for node, ctx in matches if node.result is Result.UNKNOWN]
        if not matches:  # not in this report: show the reference as given
            merged.setdefault((ref, ref), _Settled(ref, ref))
        for node, context in unknown or matches:
            entry = merged.setdefault((node.id, node.text), _Settled(node.id, node.text))
            if context not in entry.contexts:
                entry.contexts.append(context)
    return list(merged.values())


def _workup_groups(ev: Evaluation) -> list[_StepGroup]:
    paths = _criterion_paths(ev)
    groups: dict[str, _StepGroup] = {}
    for item in ev.workup:
        group = groups.setdefault(item.step, _StepGroup(item.step, item.step_name, []))
        group.items.append(_WorkupEntry(item, _settled(item.settles, paths)))
    rank = {step: i for i, step in enumerate(STEP_ORDER)}
    return sorted(groups.values(), key=lambda g: rank.get(g.step, len(rank)))


def _unknowns(ev: Evaluation) -> list[_Unknown]:
    """Every unknown leaf criterion (groups only repeat their leaves' needs)."""
    found: list[_Unknown] = []
    for tree in _trees(ev):
        for criterion in _walk(tree.criteria):
            if criterion.result is Result.UNKNOWN and not criterion.children:
                found.append(_Unknown(tree.context, criterion, tree.trial_derived, not tree.decided))
    return found


def _patient_line(ev: Evaluation) -> str:
    return _patient_line_of(ev.patient, ev.as_of)


def _patient_line_of(p: PatientSummary, as_of: date) -> str:
    parts = [f"Patient {p.id}: {p.age_years} y, {p.sex}"]
    if p.deceased:
        parts.append(f"DECEASED{f' {p.deceased_date.isoformat()}' if p.deceased_date else ''}")
    if p.diagnoses:
        parts.append("; ".join(p.diagnoses))
    if p.prior_lines is not None:
        parts.append(f"{p.prior_lines} prior line(s)")
    return f"{', '.join(parts)} (as of {as_of.isoformat()})"


_VERDICT_RANK = {Verdict.ELIGIBLE: 0, Verdict.NEEDS_INFORMATION: 1, Verdict.NOT_ELIGIBLE: 2}
_TEXT_WIDTH = 120


def _clip(text: str, width: int = _TEXT_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def _text_verdict_lines(ev: Evaluation) -> list[str]:
    """Verdict lines for the terminal: eligible first, then needs information, then not eligible.

    Each indication gets its verdict line and, when there is one, its first reason on the next
    line; lines are clipped to fit a terminal.
    """
    entries: list[tuple[int, int, list[str]]] = []
    for position, product in enumerate(ev.products):
        name = f"{product.product} ({product.brand})"
        for ind in product.indications:
            marker = " [unconfirmed R/U]" if ind.unconfirmed else ""
            tag = f"[{VERDICT_LABELS[ind.verdict].upper()}]"
            more = f" (+{len(ind.reasons) - 1} more)" if len(ind.reasons) > 1 else ""
            reason = f"{ind.reasons[0]}{more}" if ind.reasons else ""
            lines = [_clip(f"  {tag:<20}{name}: {ind.name}{marker}")]
            if reason:
                lines.append(_clip(f"{'':22}- {reason}"))
            words = list(dict.fromkeys(w for c in ind.criteria for w in c.from_note))
            if words:
                quoted = ", ".join(f"“{w}”" for w in words)
                state = "reviewed" if ev.patient.from_note == "reviewed" else "unconfirmed"
                lines.append(_clip(f"{'':22}from note: {quoted} ({state})"))
            entries.append((_VERDICT_RANK.get(ind.verdict, 3), position, lines))
        if not product.indications:
            state = "no indication in force" if product.approved_on_as_of else "not yet approved"
            entries.append((4, position, [_clip(f"  {'[-]':<20}{name}: {state}")]))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return [line for _, _, lines in entries for line in lines]


def _disclaimer(ev: Evaluation) -> tuple[str, str]:
    """The disclaimer as (headline, rest); the headline always says actnav does not replace clinicians."""
    return _split_disclaimer(ev.disclaimer)


def _split_disclaimer(disclaimer: str) -> tuple[str, str]:
    text = disclaimer.strip()
    if "not replace" in text:
        head, sep, rest = text.partition(". ")
        return (head + "." if sep else head), rest.strip()
    return DISCLAIMER_HEADLINE, text


def _verdict_counts(ev: Evaluation) -> dict[str, int]:
    counts = dict.fromkeys(VERDICT_LABELS, 0)
    for product in ev.products:
        for ind in product.indications:
            counts[ind.verdict] += 1
    return counts


def _context(ev: Evaluation) -> dict[str, Any]:
    return {
        "ev": ev,
        "counts": _verdict_counts(ev),
        "Verdict": Verdict,
        "Result": Result,
        "workup_groups": _workup_groups(ev),
        "unknowns": [u for u in _unknowns(ev) if u.decisive],
        "moot_unknowns": [u for u in _unknowns(ev) if not u.decisive],
        "patient_line": _patient_line(ev),
        "disclaimer": _disclaimer(ev),
        "text_verdict_lines": _text_verdict_lines(ev),
        "fitness_banner": FITNESS_BANNER,
        "trial_lines": _trial_lines(ev.trials),
        "verdict_groups": _verdict_groups(ev),
        "product_views": _product_views(ev),
        "collapsed_indications": sum(
            ind.verdict is Verdict.NOT_ELIGIBLE for product in ev.products for ind in product.indications
        ),
        "trials_in_full": _trials_in_full(ev),
        "note_banner": NOTE_BANNERS.get(ev.patient.from_note or "", ""),
    }
