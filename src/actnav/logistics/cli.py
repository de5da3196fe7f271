"""``actnav case ...`` and ``actnav chain ...``: the vein-to-vein commands (two Typer sub-apps).

::

    actnav case open CASE --product P [--indication I] [--identity FILE.json] --actor WHO [--reason R] [--at T]
    actnav case show CASE [--format text|json]
    actnav case list [--all] [--format text|json]
    actnav case advance CASE STEP --actor WHO --reason WHY [--at T] [--decision proceed|not_proceed]
                        [--product P] [--indication I] [--report FILE] [--ld-start D --ld-end D
                        [--regimen TEXT]] [--bag FILE.json --wristband FILE.json] [--deviation TEXT]
    actnav case identity CASE --identity FILE.json --actor WHO --reason WHY
    actnav case bridging CASE --regimen TEXT --start D [--end D] --actor WHO --reason WHY
    actnav case lymphodepletion CASE --start D --end D [--regimen TEXT] --actor WHO --reason WHY
    actnav case collect CASE --facility FIN --actor WHO [--at T] [--location PLACE]
    actnav case custody CASE --din DIN --event EVENT --actor WHO [--at T] [--location PLACE] [--detail K=V]...
    actnav case schedule [CASE] [--product P --indication I] [--collection D] [--as-of D]
                         [--slip MILESTONE=D --actor WHO --reason WHY] [--format text|json] [--out FILE]
    actnav case dose [CASE] [--product P --indication I] --weight-kg KG [--format text|json]
    actnav case check-certificate [CASE] [--product P --indication I] --weight-kg KG --certificate FILE.json
                         [--record --din DIN [--accept-oos TEXT] --actor WHO --reason WHY [--at T]]
                         [--format ...]
    actnav case bedside-check CASE --bag FILE.json --wristband FILE.json --actor WHO
    actnav case notify [--as-of D] [--to ADDRESS]... [--dry-run]
    actnav chain verify [--format text|json]
    actnav chain log [--din DIN] [--case CASE] [--format text|json]

Patient identifiers are read only from files (``--identity``, ``--bag``, ``--wristband``; ``-`` is
standard input), never from the command line, and never printed. Free text (``--reason``,
``--deviation``, ``--accept-oos``, ``--detail``) must not carry patient identifiers either (they are
not detected: do not write them); deviations and details are capped at 500 characters. ``--at`` is
ISO 8601 (``2026-03-02T09:30``, a time without an offset is local time); it defaults to now. It
may not be later than now (5 minutes of clock difference allowed) nor earlier than the case's
previous step (a custody event: the collection's previous event); planned dates are slips. Every command
takes ``--database-url`` (default ``ACTNAV_DATABASE_URL``, else a SQLite file in the user data
folder) and writes inside one transaction. Exit codes: 0 done, 2 bad input or a refused transition
(the reasons are printed), 3 a broken data file, 4 ``chain verify`` found the custody log broken.
The SMTP settings of ``notify`` are in :mod:`actnav.logistics.notify`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from actnav.clikit import guard
from actnav.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from actnav.logistics.bedside import BagLabel, PatientIdentifiers
    from actnav.logistics.custody import ChainReport
    from actnav.logistics.dose import CertificateCheck, LabelledDose
    from actnav.logistics.schedule import Schedule
    from actnav.store.logistics import CaseView, CustodyEntryView

EXIT_CHAIN_BROKEN = 4

case_app = typer.Typer(
    name="case",
    help="Vein-to-vein: a therapy case from referral to follow-up (steps, custody, schedule, dose).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
chain_app = typer.Typer(
    name="chain",
    help="The chain-of-custody log: verify its hash chain, list its entries.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


class OutputFormat(StrEnum):
    """Output formats of the ``case`` and ``chain`` commands."""

    TEXT = "text"
    JSON = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", case_sensitive=False, help="text (default) or json.")
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", dir_okay=False, help="Write the output to this file (atomically).", show_default=False
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL of the database. Default: ACTNAV_DATABASE_URL, else a SQLite file in the user data folder.",
        show_default=False,
    ),
]
CaseArg = Annotated[str, typer.Argument(metavar="CASE", help="Pseudonymous case reference (never a name).")]
OptionalCaseArg = Annotated[
    str | None, typer.Argument(metavar="[CASE]", help="A stored case (or give --product/--indication).")
]
ActorOption = Annotated[
    str,
    typer.Option("--actor", envvar="ACTNAV_ACTOR", help="Who records it (staff user id; env ACTNAV_ACTOR)."),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded with the change).")]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at", metavar="TIME", help="When it happened, ISO 8601 (default: now).", show_default=False
    ),
]
ProductOption = Annotated[str | None, typer.Option("--product", help="Product id, INN, brand or short name.")]
IndicationOption = Annotated[
    str | None, typer.Option("--indication", help="Indication id of the product file.")
]
WeightOption = Annotated[str, typer.Option("--weight-kg", metavar="KG", help="Body weight in kg.")]

_OPTION_OF = {
    "case_ref": "CASE",
    "actor": "--actor",
    "reason": "--reason",
    "at": "--at",
    "product": "--product",
    "indication": "--indication",
    "weight_kg": "--weight-kg",
    "din": "--din",
    "facility": "--facility",
    "year": "--at",
    "event": "--event",
    "regimen": "--regimen",
    "end": "--end",
    "decision": "--decision",
    "milestone": "--slip",
    "details": "--detail",
    "deviation": "--deviation",
    "accepted_deviation": "--accept-oos",
    "bag": "--bag",
}


@contextlib.contextmanager
def _options() -> Iterator[None]:
    """Errors naming an input field name the command-line option instead."""
    try:
        yield
    except InputError as exc:
        where = exc.where or ""
        if where.startswith("case "):
            exc.where = "CASE"
        elif where in _OPTION_OF:
            exc.where = _OPTION_OF[where]
        raise


def _engine(database_url: str | None) -> Engine:
    from actnav.config import get_settings
    from actnav.store.db import create_schema, get_engine

    engine = get_engine(get_settings(database_url).database_url)
    create_schema(engine)
    return engine


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # the clock is read here, once per command


def _moment(text: str | None, option: str = "--at") -> dt.datetime:
    """``--at``: ISO 8601; without an offset it is local time; absent it is now."""
    from actnav.toxicity.cli import parse_time

    if text is None:
        return _now().astimezone()
    moment = parse_time(text, option)
    return moment.astimezone() if moment.tzinfo is None else moment


def _date(text: str | None, option: str) -> dt.date | None:
    from actnav.toxicity.cli import parse_date

    return parse_date(text, option)


def _weight(text: str) -> float:
    from actnav.toxicity.cli import parse_number

    value = parse_number(text, "--weight-kg", positive=True)
    assert value is not None
    return value


def _read(path: Path) -> Any:
    from actnav.toxicity.cli import read_json

    return read_json(path)


def _person(path: Path, option: str) -> PatientIdentifiers:
    from actnav.logistics.bedside import parse_identifiers

    return parse_identifiers(_read(path), where=option)


def _bag(path: Path) -> BagLabel:
    from actnav.logistics.bedside import BagLabel, parse_identifiers

    found = parse_identifiers(_read(path), where="--bag", bag=True)
    assert isinstance(found, BagLabel)
    return found


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text)
        return
    from actnav.cli import write_atomic

    write_atomic(out, text if text.endswith("\n") else text + "\n")
    typer.echo(f"wrote {out}")


# ---------------------------------------------------------------------------------------------
# Text renderings
# ---------------------------------------------------------------------------------------------


def case_text(case: CaseView) -> str:
    """A case as text: step, product, transitions (who, when, why), records, collections, next steps."""
    lines = [
        f"Case {case.case_ref}: {case.step_title} ({case.step})",
        f"Product {case.product_id}; indication {case.indication_id or '(not chosen)'}; "
        f"identity {'registered' if case.identity_registered else 'NOT registered'}",
        "",
        "Transitions:",
    ]
    for t in case.transitions:
        frm = f"{t.from_step} -> " if t.from_step else ""
        extra = f" {json.dumps(t.details, ensure_ascii=False)}" if t.details else ""
        lines.append(
            f"  {t.seq}. {t.at.isoformat(timespec='minutes')} {frm}{t.to_step} by {t.actor}: {t.reason}{extra}"
        )
    if case.records:
        lines.append("Records:")
        for r in case.records:
            lines.append(
                f"  {r.at.isoformat(timespec='minutes')} {r.kind} by {r.actor}: "
                f"{json.dumps(r.payload, ensure_ascii=False)}"
            )
    if case.collections:
        lines.append("Collections:")
        for c in case.collections:
            lines.append(
                f"  {c.display} ({c.kind}, {c.collected_on}): {' -> '.join(c.custody) or 'no custody events'}"
            )
    if case.next_steps:
        lines.append("Next steps:")
        for n in case.next_steps:
            need = "ready" if not n.unmet else "needs: " + "; ".join(n.unmet)
            lines.append(f"  {n.step}: {need}")
    return "\n".join(lines)


def schedule_text(schedule: Schedule) -> str:
    """The calendar as a text timeline (date, day relative to infusion, status, milestone, basis)."""
    lines = [
        f"Schedule of {schedule.brand} ({schedule.product_id}), indication {schedule.indication_id or '(not chosen)'}, "
        f"as of {schedule.as_of}",
        "",
    ]
    for m in schedule.milestones:
        when = m.date.isoformat() if m.date else "    ?     "
        day = f"day {m.day:+d}" if m.day is not None else ""
        mark = " *" if m.programme_default else ""
        lines.append(f"  {when}  {day:>9}  {m.status:<8} {m.title}  [{m.basis}]{mark}")
    if schedule.conflicts:
        lines.append("")
        for c in schedule.conflicts:
            lines.append(f"{c.severity.upper()} ({c.kind}): {c.text}")
    if schedule.notes:
        lines.append("")
        lines += [f"note: {n}" for n in schedule.notes]
    lines.append("")
    lines.append("* programme default (not a published figure); set your programme's values.")
    return "\n".join(lines)


def dose_text(dose: LabelledDose) -> str:
    """The labelled dose as text."""
    from actnav.logistics.dose import cells_text

    weight = f" at {dose.weight_kg:g} kg" if dose.weight_kg is not None else ""
    if dose.basis == "per_kg":
        rule = (
            f"{cells_text(dose.per_kg_min)} to {cells_text(dose.per_kg_max)} cells/kg"
            if not dose.target
            else f"{cells_text(dose.per_kg_min)} cells/kg"
        )
    else:
        rule = "flat dose"
    amount = (
        cells_text(dose.min_cells)
        if dose.min_cells == dose.max_cells
        else f"{cells_text(dose.min_cells)} to {cells_text(dose.max_cells)}"
    )
    lines = [
        f"{'UNCONFIRMED ' if dose.unconfirmed else ''}{dose.brand}, {dose.indication_id}{weight}: "
        f"{amount} {dose.cells} ({rule}{', capped' if dose.capped else ''})",
        f"  label: {dose.text}",
        f"  source: {dose.source.citation.split('.')[0]} ({dose.source.section}, {dose.source.verification})",
    ]
    lines += [f"  note: {n}" for n in dose.notes]
    return "\n".join(lines)


def certificate_text(check: CertificateCheck) -> str:
    """A certificate check as text."""
    head = "WITHIN LABEL" if check.status == "within_label" else "OUT OF SPECIFICATION"
    lines = [f"{head}: {check.dose.brand}, {check.dose.indication_id}"]
    lines += [f"  {f}" for f in check.findings]
    if check.what_to_do:
        lines.append(f"  what to do: {check.what_to_do}")
    return "\n".join(lines)


def chain_text(report: ChainReport) -> str:
    """The chain verification as text."""
    if report.intact:
        return f"custody log intact: {report.entries} entries, head {report.head_seq} {report.head_hash}"
    return f"custody log BROKEN at entry {report.first_broken_seq}: {report.problem} ({report.entries} entries read)"


def log_text(entries: list[CustodyEntryView]) -> str:
    """Custody entries as text, one line each."""
    if not entries:
        return "no custody events"
    return "\n".join(
        f"{e.seq:>5}  {e.at}  {e.din}  {e.event:<9} case {e.case_ref} by {e.actor}"
        f"{f' at {e.location}' if e.location else ''}  {e.entry_hash[:12]}"
        for e in entries
    )


# ---------------------------------------------------------------------------------------------
# case commands
# ---------------------------------------------------------------------------------------------


@case_app.command("open")
def open_command(
    case: CaseArg,
    product: Annotated[str, typer.Option("--product", help="Product id, INN, brand or short name.")],
    actor: ActorOption,
    indication: IndicationOption = None,
    identity: Annotated[
        Path | None,
        typer.Option(
            "--identity", metavar="FILE.json", help="Patient identifiers to register (hashed, never stored)."
        ),
    ] = None,
    reason: ReasonOption = "referral received",
    at: AtOption = None,
    database_url: DatabaseUrl = None,
    output_format: FormatOption = OutputFormat.TEXT,
) -> None:
    """Open a case at the referral step."""

    def run() -> None:
        from actnav.logistics import service

        person = _person(identity, "--identity") if identity is not None else None
        with _options():
            view = service.open_case(
                _engine(database_url),
                case,
                product,
                at=_moment(at),
                recorded_at=_now(),
                actor=actor,
                reason=reason,
                indication_id=indication,
                identity=person,
            )
        _show(view, output_format)

    guard(run)


def _show(view: CaseView, output_format: OutputFormat) -> None:
    if output_format is OutputFormat.JSON:
        _json(view.model_dump(mode="json"))
    else:
        typer.echo(case_text(view))


@case_app.command("show")
def show_command(
    case: CaseArg, database_url: DatabaseUrl = None, output_format: FormatOption = OutputFormat.TEXT
) -> None:
    """Show a case: its step, every transition (who, when, why), records, collections, next steps."""

    def run() -> None:
        from actnav.logistics import service

        with _options():
            _show(service.read_case(_engine(database_url), case), output_format)

    guard(run)


@case_app.command("list")
def list_command(
    all_cases: Annotated[bool, typer.Option("--all", help="Include closed and withdrawn cases.")] = False,
    database_url: DatabaseUrl = None,
    output_format: FormatOption = OutputFormat.TEXT,
) -> None:
    """List the cases (active ones unless --all)."""

    def run() -> None:
        from actnav.logistics import service

        cases = service.list_cases(_engine(database_url), active_only=not all_cases)
        if output_format is OutputFormat.JSON:
            _json([{"case": c.case_ref, "product": c.product_id, "step": c.step} for c in cases])
            return
        for c in cases:
            typer.echo(f"{c.case_ref}  {c.product_id}  {c.step}")
        if not cases:
            typer.echo("no cases")

    guard(run)


@case_app.command("advance")
def advance_command(
    case: CaseArg,
    step: Annotated[
        str, typer.Argument(metavar="STEP", help="The step to move to (e.g. evaluation, review, infused).")
    ],
    actor: ActorOption,
    reason: ReasonOption,
    at: AtOption = None,
    decision: Annotated[
        str | None, typer.Option("--decision", help="Review decision: proceed or not_proceed.")
    ] = None,
    product: ProductOption = None,
    indication: IndicationOption = None,
    report: Annotated[
        Path | None, typer.Option("--report", metavar="FILE", help="Attach this evaluation report first.")
    ] = None,
    ld_start: Annotated[
        str | None, typer.Option("--ld-start", metavar="DATE", help="Lymphodepletion first day.")
    ] = None,
    ld_end: Annotated[
        str | None, typer.Option("--ld-end", metavar="DATE", help="Lymphodepletion last day.")
    ] = None,
    regimen: Annotated[
        str | None, typer.Option("--regimen", help="Lymphodepletion regimen as given.")
    ] = None,
    bag: Annotated[
        Path | None, typer.Option("--bag", metavar="FILE.json", help="Infusion bag label (infused).")
    ] = None,
    wristband: Annotated[
        Path | None, typer.Option("--wristband", metavar="FILE.json", help="Patient wristband (infused).")
    ] = None,
    deviation: Annotated[
        str | None,
        typer.Option(
            "--deviation",
            help="Infusion outside the label window: why and who agreed (at most 500 characters; "
            "do not write patient identifiers).",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    output_format: FormatOption = OutputFormat.TEXT,
) -> None:
    """Move a case to another step; refused (exit 2, with every reason) when the rules do not allow it."""

    def run() -> None:
        from actnav.logistics import service
        from actnav.logistics.lifecycle import parse_step

        target = parse_step(step, where="STEP")
        engine = _engine(database_url)
        moment = _moment(at)
        ld = None
        if ld_start is not None or ld_end is not None:
            start, end = _date(ld_start, "--ld-start"), _date(ld_end, "--ld-end")
            if start is None or end is None:
                raise InputError("give both --ld-start and --ld-end", where="--ld-start")
            ld = (start, end, regimen)
        bag_label = _bag(bag) if bag is not None else None
        band = _person(wristband, "--wristband") if wristband is not None else None
        with _options():
            if report is not None:
                service.attach_report_file(engine, case, report, at=moment, recorded_at=_now(), actor=actor)
            done = service.advance(
                engine,
                case,
                target,
                at=moment,
                recorded_at=_now(),
                actor=actor,
                reason=reason,
                decision=decision,
                product_id=product,
                indication_id=indication,
                lymphodepletion=ld,
                deviation=deviation,
                bag=bag_label,
                wristband=band,
            )
        if output_format is OutputFormat.JSON:
            _json(done.model_dump(mode="json"))
        else:
            typer.echo(
                f"case {case}: {done.from_step} -> {done.to_step} (transition {done.seq}) by {done.actor}"
            )

    guard(run)


case_app.command("transition", hidden=True)(advance_command)


@case_app.command("identity")
def identity_command(
    case: CaseArg,
    identity: Annotated[
        Path, typer.Option("--identity", metavar="FILE.json", help="Patient identifiers (hashed).")
    ],
    actor: ActorOption,
    reason: ReasonOption,
    at: AtOption = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Register the hash of the patient's identifiers for the bedside check (replaces an earlier one)."""

    def run() -> None:
        from actnav.logistics import service

        person = _person(identity, "--identity")
        with _options():
            service.register_identity(
                _engine(database_url),
                case,
                person,
                at=_moment(at),
                recorded_at=_now(),
                actor=actor,
                reason=reason,
            )
        typer.echo(f"case {case}: identity registered (hash only)")

    guard(run)


@case_app.command("bridging")
def bridging_command(
    case: CaseArg,
    regimen: Annotated[str, typer.Option("--regimen", help="Bridging regimen as given.")],
    start: Annotated[str, typer.Option("--start", metavar="DATE", help="First day.")],
    actor: ActorOption,
    reason: ReasonOption,
    end: Annotated[str | None, typer.Option("--end", metavar="DATE", help="Last day (if known).")] = None,
    at: AtOption = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Record bridging therapy (between the review and lymphodepletion)."""

    def run() -> None:
        from actnav.logistics import service

        first = _date(start, "--start")
        assert first is not None
        with _options():
            service.record_bridging(
                _engine(database_url),
                case,
                regimen=regimen,
                start=first,
                end=_date(end, "--end"),
                at=_moment(at),
                recorded_at=_now(),
                actor=actor,
                reason=reason,
            )
        typer.echo(f"case {case}: bridging recorded")

    guard(run)


@case_app.command("lymphodepletion")
def lymphodepletion_command(
    case: CaseArg,
    start: Annotated[str, typer.Option("--start", metavar="DATE", help="First day.")],
    end: Annotated[str, typer.Option("--end", metavar="DATE", help="Last day.")],
    actor: ActorOption,
    reason: ReasonOption,
    regimen: Annotated[str | None, typer.Option("--regimen", help="Regimen as given.")] = None,
    at: AtOption = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Record or correct the lymphodepletion days (the newest record counts)."""

    def run() -> None:
        from actnav.logistics import service

        first, last = _date(start, "--start"), _date(end, "--end")
        assert first is not None and last is not None
        with _options():
            service.record_lymphodepletion(
                _engine(database_url),
                case,
                start=first,
                end=last,
                regimen=regimen,
                at=_moment(at),
                recorded_at=_now(),
                actor=actor,
                reason=reason,
            )
        typer.echo(f"case {case}: lymphodepletion {first} to {last} recorded")

    guard(run)


@case_app.command("collect")
def collect_command(
    case: CaseArg,
    facility: Annotated[
        str, typer.Option("--facility", metavar="FIN", help="Facility identification number (e.g. G1234).")
    ],
    actor: ActorOption,
    at: AtOption = None,
    location: Annotated[str | None, typer.Option("--location", help="Where it was collected.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Record a collection: gives it a DIN (printed) and appends 'collected' to the custody log."""

    def run() -> None:
        from actnav.logistics import service

        with _options():
            din = service.add_collection(
                _engine(database_url),
                case,
                facility=facility,
                at=_moment(at),
                recorded_at=_now(),
                actor=actor,
                location=location,
            )
        typer.echo(f"{din.text}  ({din.display})")

    guard(run)


@case_app.command("custody")
def custody_command(
    case: CaseArg,
    din: Annotated[str, typer.Option("--din", help="The collection's DIN with its check character.")],
    event: Annotated[str, typer.Option("--event", help="labelled, shipped, received, stored or thawed.")],
    actor: ActorOption,
    at: AtOption = None,
    location: Annotated[str | None, typer.Option("--location", help="Where.")] = None,
    detail: Annotated[
        list[str] | None,
        typer.Option(
            "--detail",
            metavar="KEY=VALUE",
            help="Extra detail (repeatable; values up to 500 characters; do not write patient identifiers).",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    output_format: FormatOption = OutputFormat.TEXT,
) -> None:
    """Append one custody event for a collection (the log is append-only and hash-chained)."""

    def run() -> None:
        from actnav.logistics import service

        details: dict[str, str] = {}
        for item in detail or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise InputError(f"{item!r} is not KEY=VALUE", where="--detail")
            details[key.strip()] = value.strip()
        with _options():
            entry = service.append_custody_event(
                _engine(database_url),
                case,
                din,
                event,
                at=_moment(at),
                recorded_at=_now(),
                actor=actor,
                location=location,
                details=details,
            )
        if output_format is OutputFormat.JSON:
            _json(entry.model_dump(mode="json"))
        else:
            typer.echo(log_text([entry]))

    guard(run)


@case_app.command("schedule")
def schedule_command(
    case: OptionalCaseArg = None,
    product: ProductOption = None,
    indication: IndicationOption = None,
    collection: Annotated[
        str | None,
        typer.Option("--collection", metavar="DATE", help="Planned collection day (if none recorded)."),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", metavar="DATE", help="Today (default: today).")
    ] = None,
    slip: Annotated[
        list[str] | None,
        typer.Option(
            "--slip",
            metavar="MILESTONE=DATE",
            help="A milestone still ahead now expected on another day, today or later (recorded).",
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", envvar="ACTNAV_ACTOR", help="Who records a slip.")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the date slipped.")] = None,
    database_url: DatabaseUrl = None,
    output_format: FormatOption = OutputFormat.TEXT,
    out: OutOption = None,
) -> None:
    """The calendar as a timeline: recorded and expected dates, computed ones, label-window conflicts."""

    def run() -> None:
        from actnav.logistics import service
        from actnav.logistics.schedule import build_schedule

        today = _date(as_of, "--as-of") or dt.date.today()
        planned = _date(collection, "--collection")
        with _options():
            if case is None:
                if product is None:
                    raise InputError("give a CASE, or --product (and --indication) for a plan", where="CASE")
                if slip:
                    raise InputError("--slip records a date on a stored case", where="--slip")
                schedule = build_schedule(product, indication, as_of=today, planned_collection=planned)
            else:
                engine = _engine(database_url)
                now = _now()
                for item in slip or []:
                    key, sep, value = item.partition("=")
                    day = _date(value, "--slip") if sep else None
                    if day is None:
                        raise InputError(f"{item!r} is not MILESTONE=YYYY-MM-DD", where="--slip")
                    if actor is None or reason is None:
                        raise InputError("a slip is recorded: give --actor and --reason", where="--slip")
                    service.record_expected_date(
                        engine,
                        case,
                        key.strip(),
                        day,
                        at=now,
                        recorded_at=now,
                        actor=actor,
                        reason=reason,
                        today=now.astimezone().date(),
                    )
                schedule = service.case_schedule(engine, case, as_of=today, planned_collection=planned)
        if output_format is OutputFormat.JSON:
            _emit(json.dumps(schedule.model_dump(mode="json"), indent=2, ensure_ascii=False), out)
        else:
            _emit(schedule_text(schedule), out)

    guard(run)


def _dose_for(
    case: str | None, product: str | None, indication: str | None, weight: float, database_url: str | None
) -> LabelledDose:
    from actnav.logistics import service
    from actnav.logistics.dose import labelled_dose

    if case is not None:
        if product is not None:
            raise InputError("give a CASE or --product, not both", where="--product")
        return service.case_dose(_engine(database_url), case, weight)
    if product is None:
        raise InputError("give a CASE, or --product (and --indication)", where="CASE")
    return labelled_dose(product, indication, weight)


@case_app.command("dose")
def dose_command(
    weight_kg: WeightOption,
    case: OptionalCaseArg = None,
    product: ProductOption = None,
    indication: IndicationOption = None,
    database_url: DatabaseUrl = None,
    output_format: FormatOption = OutputFormat.TEXT,
) -> None:
    """The labelled dose for a body weight (weight bands, per-kg doses, caps)."""

    def run() -> None:
        with _options():
            dose = _dose_for(case, product, indication, _weight(weight_kg), database_url)
        if output_format is OutputFormat.JSON:
            _json(dose.model_dump(mode="json"))
        else:
            typer.echo(dose_text(dose))

    guard(run)


@case_app.command("check-certificate")
def check_certificate_command(
    weight_kg: WeightOption,
    certificate: Annotated[
        Path,
        typer.Option(
            "--certificate",
            metavar="FILE.json",
            help='{"cells": 1.8e8, "lot": ..., "meets_release_specifications": true}',
        ),
    ],
    case: OptionalCaseArg = None,
    product: ProductOption = None,
    indication: IndicationOption = None,
    record: Annotated[
        bool, typer.Option("--record", help="Record the result as the product's release.")
    ] = False,
    din: Annotated[str | None, typer.Option("--din", help="The product's DIN (with --record).")] = None,
    accept_oos: Annotated[
        str | None,
        typer.Option(
            "--accept-oos",
            metavar="TEXT",
            help="Out of specification: the documented decision to proceed (at most 500 characters; "
            "do not write patient identifiers).",
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", envvar="ACTNAV_ACTOR", help="Who records it.")
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why.")
    ] = "certificate checked against the labelled dose",
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="With --record: when the product was released, ISO 8601 (default: now).",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    output_format: FormatOption = OutputFormat.TEXT,
) -> None:
    """Check a product certificate against the labelled dose; out of specification is flagged with what to do."""

    def run() -> None:
        from pydantic import ValidationError

        from actnav.logistics import service
        from actnav.logistics.dose import Certificate, check_certificate

        try:
            values = Certificate.model_validate(_read(certificate))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise InputError(f"{field}: {first['msg']}", where=str(certificate)) from None
        weight = _weight(weight_kg)
        with _options():
            if record:
                if case is None or actor is None:
                    raise InputError("--record needs a CASE and --actor", where="--record")
                result = service.case_certificate(
                    _engine(database_url),
                    case,
                    weight,
                    values,
                    record=True,
                    din=din,
                    accepted_deviation=accept_oos,
                    at=_moment(at),
                    recorded_at=_now(),
                    actor=actor,
                    reason=reason,
                )
            else:
                result = check_certificate(_dose_for(case, product, indication, weight, database_url), values)
        if output_format is OutputFormat.JSON:
            _json(result.model_dump(mode="json"))
        else:
            typer.echo(certificate_text(result))

    guard(run)


@case_app.command("bedside-check")
def bedside_check_command(
    case: CaseArg,
    bag: Annotated[Path, typer.Option("--bag", metavar="FILE.json", help="Bag label: identifiers and DIN.")],
    wristband: Annotated[
        Path, typer.Option("--wristband", metavar="FILE.json", help="Patient wristband identifiers.")
    ],
    actor: ActorOption,
    at: AtOption = None,
    database_url: DatabaseUrl = None,
    output_format: FormatOption = OutputFormat.TEXT,
) -> None:
    """Compare the wristband with the bag label and the case (no infusion); exit 2 on any mismatch."""

    def run() -> None:
        from actnav.logistics import service

        label, band = _bag(bag), _person(wristband, "--wristband")
        with _options():
            result = service.run_bedside_check(
                _engine(database_url), case, label, band, at=_moment(at), recorded_at=_now(), actor=actor
            )
        if output_format is OutputFormat.JSON:
            _json(result.model_dump(mode="json"))
        else:
            typer.echo(
                f"bedside check {'PASSED' if result.passed else 'REFUSED'} for {result.din or 'an unreadable DIN'}"
            )
            for line in result.reasons:
                typer.echo(f"  {line}")
        if not result.passed:
            raise typer.Exit(2)

    guard(run)


@case_app.command("notify")
def notify_command(
    as_of: Annotated[
        str | None, typer.Option("--as-of", metavar="DATE", help="Today (default: today).")
    ] = None,
    to: Annotated[
        list[str] | None, typer.Option("--to", metavar="ADDRESS", help="Recipient (repeatable).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the due steps; send nothing.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """E-mail the due and overdue steps of active cases (SMTP settings: ACTNAV_SMTP_*)."""

    def run() -> None:
        from actnav.logistics import service
        from actnav.logistics.notify import SmtpSettings, notify_due_steps, parse_recipients

        today = _date(as_of, "--as-of") or dt.date.today()
        due = service.due_steps(_engine(database_url), today)
        for item in due:
            late = f", {item.days_late} d overdue" if item.status == "overdue" else ""
            typer.echo(f"{item.date}  {item.case_ref}  {item.title} ({item.status}{late})")
        if dry_run:
            typer.echo(f"{len(due)} step(s); nothing sent (--dry-run)")
            return
        settings = SmtpSettings.from_env()
        result = notify_due_steps(due, settings, as_of=today, recipients=parse_recipients(to or []) or None)
        typer.echo(
            f"sent to {', '.join(result.recipients)}" if result.sent else "nothing due; no e-mail sent"
        )

    guard(run)


# ---------------------------------------------------------------------------------------------
# chain commands
# ---------------------------------------------------------------------------------------------


@chain_app.command("verify")
def verify_command(database_url: DatabaseUrl = None, output_format: FormatOption = OutputFormat.TEXT) -> None:
    """Verify the custody log's hash chain; exit 4 naming the first broken entry if it was altered."""

    def run() -> None:
        from actnav.logistics import service

        report = service.verify_custody_chain(_engine(database_url))
        if output_format is OutputFormat.JSON:
            _json({**report.__dict__, "intact": report.intact})
        else:
            typer.echo(chain_text(report))
        if not report.intact:
            raise typer.Exit(EXIT_CHAIN_BROKEN)

    guard(run)


@chain_app.command("log")
def log_command(
    din: Annotated[str | None, typer.Option("--din", help="Only this DIN.")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Only this case.")] = None,
    database_url: DatabaseUrl = None,
    output_format: FormatOption = OutputFormat.TEXT,
) -> None:
    """List custody log entries in sequence order."""

    def run() -> None:
        from actnav.logistics import service

        try:
            entries = service.read_custody_log(_engine(database_url), din=din, case_ref=case)
        except InputError as exc:
            exc.where = {"case_ref": "--case", "din": "--din"}.get(exc.where or "", exc.where)
            raise
        if output_format is OutputFormat.JSON:
            _json([e.model_dump(mode="json") for e in entries])
        else:
            typer.echo(log_text(entries))

    guard(run)
