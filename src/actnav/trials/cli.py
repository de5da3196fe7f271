"""``actnav trials``: import trial records, sync with ClinicalTrials.gov, list and show them.

::

    actnav trials import PATH... [--database-url URL] [--batch-size N] [--strict]
    actnav trials sync [--term T] [--condition C] [--intervention I] [--status S]...
                       [--page-size N] [--max-pages N] [--database-url URL]
    actnav trials list [--act-only] [--modality M] [--status S]... [--limit N] [--database-url URL]
    actnav trials show NCT_ID [--json] [--database-url URL]
    actnav trials load-bundled [--database-url URL]

The database is ``--database-url``, else ``ACTNAV_DATABASE_URL``, else a SQLite file in the user's
data folder (:func:`actnav.config.get_settings`). Errors are one line on stderr with the exit codes
of :mod:`actnav.errors` (2: bad input, including a malformed file with ``--strict`` and a failed
ClinicalTrials.gov query; 1: internal error); ``ACTNAV_DEBUG=1`` shows the traceback.
Mount with ``app.add_typer(actnav.trials.cli.app, name="trials")``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from actnav.clikit import guard
from actnav.errors import EXIT_BAD_INPUT

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from actnav.store.trials import ImportSummary
    from actnav.trials.ctgov import CtgovClient, SearchPage, SyncReport
    from actnav.trials.models import TrialRecord
    from actnav.trials.sources import RecordProblem

app = typer.Typer(
    name="trials",
    help="Clinical trial records: import files, sync with ClinicalTrials.gov, list, show.",
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL of the database. Default: ACTNAV_DATABASE_URL, else a SQLite file in the "
        "user data folder.",
        show_default=False,
    ),
]
MAX_CHANGES_SHOWN = 50


_run = guard  # the shared error guard (actnav.clikit)


def _engine(database_url: str | None) -> Engine:
    from actnav.config import get_settings
    from actnav.store.db import create_schema, get_engine

    engine = get_engine(get_settings(database_url).database_url)
    create_schema(engine)
    return engine


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # the clock is read here, once per command


def _summary_line(summary: ImportSummary, malformed: int) -> str:
    return (
        f"new {summary.new}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"skipped-older {summary.skipped_older}, malformed {malformed}"
    )


# --------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------


def _records(
    files: list[Path], problems: list[RecordProblem], done: Callable[[Path, int], None]
) -> Iterator[TrialRecord]:
    from actnav.trials.sources import read_file

    for path in files:
        count = 0
        for result in read_file(path):
            count += 1
            if result.problem is not None:
                problems.append(result.problem)
            elif result.record is not None:
                yield result.record
        done(path, count)


def import_files(
    paths: list[Path],
    engine: Engine,
    *,
    batch_size: int = 500,
    now: dt.datetime | None = None,
    on_file: Callable[[Path, int], None] | None = None,
) -> tuple[ImportSummary, list[RecordProblem], int]:
    """Import every record of the given files and folders (the body of ``actnav trials import``).

    Args:
        paths: files or folders (see :mod:`actnav.trials.sources` for the formats).
        engine: the database (schema created).
        batch_size: records per transaction.
        now: the import time.
        on_file: called after each file is read, with the file and its record count.

    Returns:
        (upsert summary, malformed records skipped, files read).

    Raises:
        TrialSourceError: a path does not exist (before anything is imported).
    """
    from actnav.store.trials import import_records
    from actnav.trials.sources import list_input_files

    files = [f for p in paths for f in list_input_files(p)]
    problems: list[RecordProblem] = []
    summary = import_records(
        engine,
        _records(files, problems, on_file or (lambda _p, _n: None)),
        batch_size=batch_size,
        now=now,
    )
    return summary, problems, len(files)


@app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="Files or folders: API v2 study JSON, paged search responses, NDJSON, flattened "
            "TrialGPT records, .gz or .zip of those.",
            show_default=False,
        ),
    ],
    database_url: DatabaseUrl = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Records per transaction.")] = 500,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Exit with code 2 if any record was malformed (the rest is still imported)."
        ),
    ] = False,
) -> None:
    """Import trial records into the database (upsert by NCT id; older versions never overwrite newer)."""

    def run() -> None:
        from actnav.store.db import session_scope
        from actnav.store.trials import count_trials
        from actnav.trials.sources import list_input_files

        engine = _engine(database_url)
        files = [f for p in paths for f in list_input_files(p)]
        read = {"records": 0}
        with typer.progressbar(length=len(files), label="Importing", file=sys.stderr) as bar:

            def on_file(_path: Path, count: int) -> None:
                read["records"] += count
                bar.update(1)

            summary, problems, n_files = import_files(
                paths, engine, batch_size=batch_size, now=_now(), on_file=on_file
            )
        with session_scope(engine) as session:
            total, act = count_trials(session)
        typer.echo(f"Files read: {n_files} ({read['records']} records)")
        typer.echo(f"Records: {_summary_line(summary, len(problems))}")
        typer.echo(f"Database: {total} trials, {act} classified as adoptive cell therapy")
        if problems:
            typer.echo("Malformed records (skipped), file:record:field: problem")
            for problem in problems:
                typer.echo(f"  {problem}")
        if strict and problems:
            raise typer.Exit(EXIT_BAD_INPUT)

    _run(run)


# --------------------------------------------------------------------------------------------
# sync
# --------------------------------------------------------------------------------------------


def make_client() -> CtgovClient:
    """The ClinicalTrials.gov client the ``sync`` command uses (``ACTNAV_CTGOV_URL`` is honoured)."""
    from actnav.trials.ctgov import CtgovClient

    return CtgovClient()


@app.command("sync")
def sync_(
    term: Annotated[str | None, typer.Option("--term", help="Free-text search (query.term).")] = None,
    condition: Annotated[
        str | None, typer.Option("--condition", help="Condition or disease (query.cond).")
    ] = None,
    intervention: Annotated[
        str | None, typer.Option("--intervention", help="Intervention or treatment (query.intr).")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Overall status to keep, e.g. recruiting (repeat or comma-separate)."),
    ] = None,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=1000, help="Studies per page.")] = 100,
    max_pages: Annotated[
        int | None, typer.Option("--max-pages", min=1, help="Stop after this many pages.", show_default=False)
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Fetch a search from ClinicalTrials.gov, store it, and report what changed since the last sync."""

    def run() -> None:
        from actnav.errors import InputError
        from actnav.trials.ctgov import SearchQuery, normalise_statuses, sync

        if not (term or condition or intervention or status):
            raise InputError(
                "give at least one of --term, --condition, --intervention, --status",
                hint="a sync of the whole registry is not supported",
            )
        query = SearchQuery(term, condition, intervention, normalise_statuses(status or []))
        engine = _engine(database_url)
        started = _now()
        with make_client() as client:

            def on_page(page: SearchPage, report: SyncReport) -> None:
                total = f" of {report.total_count}" if report.total_count is not None else ""
                typer.echo(f"  page {page.number}: {report.fetched}{total} studies", err=True)

            report = sync(
                engine,
                client,
                query,
                page_size=page_size,
                max_pages=max_pages,
                clock=lambda: started,
                on_page=on_page,
            )
        total = "unknown" if report.total_count is None else str(report.total_count)
        typer.echo(
            f"ClinicalTrials.gov: {total} studies match; fetched {report.fetched} in {report.pages} pages"
        )
        if not report.complete:
            typer.echo(
                "  stopped before the last page (--max-pages): unreturned trials were not marked closed"
            )
        typer.echo(
            f"Changes: new {report.count('new')}, updated {report.count('updated')},"
            f" closed {report.count('closed')}"
            f" (unchanged {report.summary.unchanged}, skipped-older {report.summary.skipped_older},"
            f" malformed {len(report.problems)})"
        )
        for change in report.changes[:MAX_CHANGES_SHOWN]:
            detail = f"  ({change.detail})" if change.detail else ""
            typer.echo(f"  {change.nct_id}  {change.kind}{detail}")
        if len(report.changes) > MAX_CHANGES_SHOWN:
            typer.echo(f"  ... and {len(report.changes) - MAX_CHANGES_SHOWN} more (table trial_change)")
        for problem in report.problems:
            typer.echo(f"  malformed: {problem}")
        typer.echo(f"Recorded as sync run {report.run_id}.")

    _run(run)


# --------------------------------------------------------------------------------------------
# list / show
# --------------------------------------------------------------------------------------------


@app.command("list")
def list_(
    act_only: Annotated[bool, typer.Option("--act-only", help="Only adoptive cell therapy trials.")] = False,
    modality: Annotated[
        str | None, typer.Option("--modality", help="CAR-T, TCR-T, TIL, CAR-NK/NK or 'other cell therapy'.")
    ] = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Overall status, e.g. recruiting (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many trials.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List stored trials: NCT id, status, ACT modality, targets, cell source, title."""

    def run() -> None:
        from actnav.errors import InputError
        from actnav.store.db import session_scope
        from actnav.store.trials import list_trials
        from actnav.trials.ctgov import normalise_statuses
        from actnav.trials.recognition import MODALITIES

        chosen = None
        if modality:
            by_lower = {m.lower(): m for m in MODALITIES}
            chosen = by_lower.get(modality.strip().lower())
            if chosen is None:
                raise InputError(
                    f"unknown modality {modality!r}", where="--modality", hint=", ".join(MODALITIES)
                )
        engine = _engine(database_url)
        with session_scope(engine) as session:
            rows = list_trials(
                session,
                act_only=act_only or chosen is not None,
                modality=chosen,
                status=normalise_statuses(status or []),
                limit=limit,
            )
        for row in rows:
            act = row.modality if row.is_act and row.modality else "-"
            targets = ",".join(row.targets) or "-"
            cell = row.cell_source if row.is_act and row.cell_source else "-"
            title = row.title if len(row.title) <= 90 else row.title[:87] + "..."
            typer.echo(
                f"{row.nct_id}  {row.status or '-':<22}  {act:<18}  {targets:<20}  {cell:<10}  {title}"
            )
        typer.echo(f"{len(rows)} trials", err=True)

    _run(run)


@app.command("show")
def show(
    nct_id: Annotated[str, typer.Argument(metavar="NCT_ID", help="The trial's NCT id.", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stored record and classification as JSON.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show one stored trial: the record's main fields and its ACT classification with evidence."""

    def run() -> None:
        from actnav.errors import InputError
        from actnav.store.db import session_scope
        from actnav.store.trials import get_trial

        engine = _engine(database_url)
        with session_scope(engine) as session:
            row = get_trial(session, nct_id)
            if row is None:
                raise InputError(
                    "no such trial in the database", where=nct_id, hint="import or sync it first"
                )
            record = row.to_record()
            act = row.classification()
            imported = row.imported_at
        if as_json:
            doc = {
                "record": record.model_dump(mode="json", exclude={"raw"}),
                "act": act.model_dump(mode="json"),
                "imported_at": imported.isoformat(),
            }
            typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
            return
        ages = " to ".join(
            f"{a:g} y" if a is not None else "no limit"
            for a in (record.minimum_age_years, record.maximum_age_years)
        )
        typer.echo(f"{record.nct_id}  {record.title}")
        typer.echo(
            f"  status: {record.overall_status or '-'}  phases: {', '.join(record.phases) or '-'}"
            f"  last update: {record.last_update or '-'}  source: {record.source_format}"
        )
        typer.echo(f"  conditions: {'; '.join(record.conditions) or '-'}")
        typer.echo(f"  interventions: {'; '.join(i.name for i in record.interventions) or '-'}")
        typer.echo(f"  ages: {ages}  sex: {record.sex}  sites: {len(record.sites)}")
        if act.is_act:
            typer.echo(
                f"  ACT: {act.modality}; targets {', '.join(act.targets) or 'not named'};"
                f" cell source {act.cell_source}"
            )
        else:
            typer.echo("  ACT: no")
        for ev in act.evidence:
            typer.echo(f"    {ev.kind:<11} {ev.value:<18} {ev.field}: {ev.phrase!r}")

    _run(run)


# --------------------------------------------------------------------------------------------
# bundled offline records
# --------------------------------------------------------------------------------------------


def load_bundled_trials(
    database_url: str | None = None, *, now: dt.datetime | None = None, batch_size: int = 500
) -> ImportSummary:
    """Import the packaged offline trial records (56 ACT trials, 3 API v2 samples) into a database.

    Re-running it is harmless: unchanged records stay unchanged, and a newer version already stored
    (e.g. from a sync) is never overwritten by the bundled one (the bundled flattened records are
    undated, see :func:`actnav.store.trials.decide`).

    Args:
        database_url: SQLAlchemy URL; default ``ACTNAV_DATABASE_URL`` or the user data folder.
        now: the import time (default: now, UTC).
        batch_size: records per transaction.

    Returns:
        The upsert summary.

    Raises:
        DataFileError: a bundled record is malformed (a broken installation).
        InputError: the database cannot be opened.
    """
    from actnav.errors import DataFileError
    from actnav.store.trials import import_records
    from actnav.trials.sources import iter_bundled_records

    engine = _engine(database_url)

    def records() -> Iterator[TrialRecord]:
        for result in iter_bundled_records():
            if result.problem is not None:
                raise DataFileError(result.problem.problem, where=str(result.problem))
            if result.record is not None:
                yield result.record

    return import_records(engine, records(), batch_size=batch_size, now=now or _now())


@app.command("load-bundled")
def load_bundled(database_url: DatabaseUrl = None) -> None:
    """Import the trial records packaged with actnav (offline; no network)."""

    def run() -> None:
        summary = load_bundled_trials(database_url)
        typer.echo(f"Bundled records: {_summary_line(summary, 0)}")

    _run(run)
