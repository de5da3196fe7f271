"""The ``actnav`` command line: thin commands that call the capabilities.

::

    actnav --version
    actnav evaluate BUNDLE [--as-of YYYY-MM-DD] [--format json|html|text] [--out PATH]
                    [--near POSTCODE|LAT,LON] [--no-trials] [--database-url URL]
    actnav evaluate --note NOTE.txt [--birth-date YYYY-MM-DD] [the options above]
    actnav extract NOTE.txt [--out bundle.json] [--as-of YYYY-MM-DD] [--format text|json]
                   [--include-note] [--birth-date YYYY-MM-DD]
    actnav match BUNDLE [--as-of YYYY-MM-DD] [--near POSTCODE|LAT,LON] [--radius-km N]
                 [--status recruiting]... [--modality CAR-T|TIL|TCR-T|...] [--all-trials]
                 [--database-url URL] [--format text|json|html] [--out PATH] [--limit N]
    actnav knowledge list
    actnav knowledge schema [evaluation|product]

Exit codes (see :mod:`actnav.errors`): ``0`` success, ``1`` internal error (a bug), ``2`` bad
input or a bad option value, ``3`` a packaged data file is invalid.

Rules this module keeps:

* The clock is read once, here (``--as-of`` defaults to today's date), and passed down.
* Errors become one line on stderr (``actnav: error: ...``), never a traceback; set
  ``ACTNAV_DEBUG=1`` to see the traceback.
* Nothing is written to ``--out`` unless the whole evaluation succeeded, and the file is replaced
  atomically (temporary file in the same folder, then :func:`os.replace`).
* Patient names never reach the terminal: only the pseudonymous resource id is shown.
* Heavy modules (the FHIR models, pint, the knowledge base, Jinja2) are imported inside the
  commands, so ``actnav --version`` starts fast.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from actnav.clikit import guard as _guard
from actnav.errors import InputError

if TYPE_CHECKING:
    from actnav.trials.geo import GeoPoint


app = typer.Typer(
    name="actnav",
    help="Adoptive cell therapy navigator: candidacy for FDA-approved CAR-T, TIL and TCR-T products.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
knowledge_app = typer.Typer(
    help="Inspect the packaged clinical knowledge.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(knowledge_app, name="knowledge")


def _mount_capabilities() -> None:
    """Mount the capability sub-apps (each module imports only light code at import time)."""
    from actnav.toxicity.cli import app as toxicity_app
    from actnav.trials.cli import app as trials_app

    app.add_typer(
        toxicity_app,
        name="toxicity",
        help="After infusion: grade CRS and ICANS, risk scores, CTCAE, ICAHT, management and monitoring plans.",
    )
    app.add_typer(trials_app, name="trials", help="Import, sync and inspect clinical trial records.")

    from actnav.logistics.cli import case_app, chain_app

    app.add_typer(case_app, name="case", help="Vein-to-vein: steps, custody, schedule, dose, e-mails.")
    app.add_typer(chain_app, name="chain", help="Chain of custody: verify the hash-chained log, list it.")

    from actnav.web.cli import patients_app, serve, users_app

    app.command("serve")(serve)
    app.add_typer(users_app, name="users", help="Accounts of the web application.")
    app.add_typer(patients_app, name="patients", help="Patients stored for the web application.")
    from actnav.screen.cli import app as screen_app

    app.add_typer(screen_app, name="screen", help="Pre-screen a population (FHIR bulk export) on Dask.")


_mount_capabilities()


class OutputFormat(StrEnum):
    """Report formats of ``actnav evaluate``."""

    JSON = "json"
    HTML = "html"
    TEXT = "text"


class FactsFormat(StrEnum):
    """Formats of ``actnav extract``'s list of facts."""

    TEXT = "text"
    JSON = "json"


class SchemaName(StrEnum):
    """Published JSON Schemas."""

    EVALUATION = "evaluation"
    PRODUCT = "product"


SUFFIX_FORMATS: dict[str, OutputFormat] = {
    ".json": OutputFormat.JSON,
    ".html": OutputFormat.HTML,
    ".htm": OutputFormat.HTML,
    ".txt": OutputFormat.TEXT,
}

# Options shared by the commands that read a patient and write a report (evaluate, match).
BundleArgument = Annotated[
    Path,
    typer.Argument(help="FHIR R4 Bundle (JSON) holding one patient.", metavar="BUNDLE", show_default=False),
]
FormatOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        "-f",
        case_sensitive=False,
        help="Output format. Default: from the --out suffix, else text.",
        show_default=False,
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        dir_okay=False,
        help="Write the output to this file (atomically) and print a summary.",
        show_default=False,
    ),
]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_as_of(value: str) -> date:
    """Parse ``--as-of``: a calendar date written ``YYYY-MM-DD``.

    Args:
        value: the option's text.

    Returns:
        The date.

    Raises:
        typer.BadParameter: not ``YYYY-MM-DD`` or not a real date (exit code 2, naming the option).
    """
    text = value.strip()
    if not _ISO_DATE.fullmatch(text):
        raise typer.BadParameter(f"{value!r} is not a date written YYYY-MM-DD.")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a valid date ({exc}).") from exc


AsOfOption = Annotated[
    date | None,
    typer.Option(
        "--as-of",
        parser=parse_as_of,
        metavar="YYYY-MM-DD",
        help="Evaluation date (labels in force, ages, result freshness). Default: today.",
        show_default=False,
    ),
]


NoteArgument = Annotated[
    Path,
    typer.Argument(
        help="Clinical note: a referral letter or case summary as plain UTF-8 text.",
        metavar="NOTE",
        show_default=False,
    ),
]
BirthDateOption = Annotated[
    date | None,
    typer.Option(
        "--birth-date",
        parser=parse_as_of,
        metavar="YYYY-MM-DD",
        help="The patient's birth date, when the note states no age (it replaces an age read from the note).",
        show_default=False,
    ),
]


def resolve_format(fmt: OutputFormat | None, out: Path | None) -> OutputFormat:
    """The report format: ``--format`` if given, else from the suffix of ``--out``, else text.

    Args:
        fmt: the ``--format`` option, or None.
        out: the ``--out`` option, or None (stdout).

    Returns:
        The format to render.

    Raises:
        typer.BadParameter: ``--out`` has a suffix that names no format and ``--format`` is absent.
    """
    if fmt is not None:
        return fmt
    if out is None:
        return OutputFormat.TEXT
    found = SUFFIX_FORMATS.get(out.suffix.lower())
    if found is None:
        raise typer.BadParameter(
            f"cannot tell the format from --out {str(out)!r} (suffix {out.suffix or 'none'!r});"
            " use .html, .json or .txt, or pass --format json|html|text.",
            param_hint="'--format'",
        )
    return found


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` all at once: readers see the old file or the new one, never half.

    Creates missing parent folders. The file gets the usual permissions (0666 less the umask).

    Args:
        path: the file to write.
        text: its content (UTF-8).

    Raises:
        InputError: the folder or file cannot be written (exit code 2).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write the report: {exc.strerror or exc}", where=str(path)) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the report: {exc.strerror or exc}", where=str(path)) from exc
        raise


def _version_callback(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("actnav")
    except PackageNotFoundError:
        number = "unknown (not installed)"
    typer.echo(f"actnav {number}")
    raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Show the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Adoptive cell therapy navigator: candidacy for FDA-approved CAR-T, TIL and TCR-T products.

    actnav supports clinicians, it does not replace them.
    """


NearOption = Annotated[
    str | None,
    typer.Option(
        "--near",
        metavar="POSTCODE|LAT,LON",
        help="Where the patient is: a US ZIP code (offline table) or LAT,LON in decimal degrees.",
        show_default=False,
    ),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL of the trial database. Default: ACTNAV_DATABASE_URL, else a SQLite file in the "
        "user data folder; without stored trials, the bundled offline records are used.",
        show_default=False,
    ),
]


def _near(value: str | None) -> GeoPoint | None:
    """``--near`` as a point (None when not given); InputError naming ``--near`` when unreadable."""
    if value is None:
        return None
    from actnav.trials.geo import parse_near

    return parse_near(value)


def _modality(value: str | None) -> str | None:
    """``--modality`` in the classifier's spelling (case-insensitive); InputError when unknown."""
    if value is None:
        return None
    from actnav.trials.recognition import MODALITIES

    by_lower = {m.lower(): m for m in MODALITIES}
    found = by_lower.get(value.strip().lower())
    if found is None:
        hint = "one of " + ", ".join(MODALITIES)
        raise InputError(f"unknown modality {value!r}", where="--modality", hint=hint)
    return found


@app.command()
def evaluate(
    bundle: Annotated[
        Path | None,
        typer.Argument(
            help="FHIR R4 Bundle (JSON) holding one patient (or give --note).",
            metavar="BUNDLE",
            show_default=False,
        ),
    ] = None,
    as_of: AsOfOption = None,
    fmt: FormatOption = None,
    out: OutOption = None,
    near: NearOption = None,
    trials: Annotated[
        bool,
        typer.Option(
            "--trials/--no-trials",
            help="Add the best-matching adoptive cell therapy trials to the report.",
        ),
    ] = True,
    database_url: DatabaseUrlOption = None,
    note: Annotated[
        Path | None,
        typer.Option(
            "--note",
            metavar="NOTE",
            help="Read the patient from a clinical note (plain text) instead of a BUNDLE, without review: "
            "criteria resting on the note are marked.",
            show_default=False,
        ),
    ] = None,
    birth_date: BirthDateOption = None,
) -> None:
    """Evaluate a patient against every FDA-approved product label, and match clinical trials.

    Per indication: eligible, not eligible or needs information, with each criterion's evidence
    and source; trial-derived fitness context; the work-up that would settle the unknowns; the
    best-ranked adoptive cell therapy trials (database, else the bundled offline records).
    With --note the patient is read from a clinical note (actnav extract shows what is read).
    """
    today = date.today()  # the only clock read in actnav
    on = as_of if as_of is not None else today
    chosen = resolve_format(fmt, out)

    def run() -> None:
        if (bundle is None) == (note is None):
            raise InputError("give either a BUNDLE or --note NOTE", where="BUNDLE")
        if birth_date is not None and note is None:
            raise InputError("--birth-date is read only with --note", where="--birth-date")
        source = bundle if bundle is not None else note
        assert source is not None
        if bundle is not None and not bundle.exists():
            raise InputError("no such file", where=str(bundle), hint="give the path of a FHIR Bundle")
        if bundle is not None and not bundle.is_file():
            raise InputError("not a file", where=str(bundle), hint="give the path of a FHIR Bundle")
        if out is not None and out.exists() and source.exists() and out.resolve() == source.resolve():
            raise InputError(
                "is the input file; the report would overwrite it",
                where="--out",
                hint="choose another file",
            )

        # Heavy imports (fhir.resources, pint, the knowledge base, Jinja2) only on this path.
        from actnav.care import report
        from actnav.eligibility.evaluate import evaluate_patient
        from actnav.patient.fhir import read_bundle

        point = _near(near)
        if note is not None:
            from actnav.patient.notes.cli import check_note_dates, note_patient

            check_note_dates(on, today=today, birth_date=birth_date)
            patient, from_note = note_patient(note, as_of=on, birth_date=birth_date)
        else:
            assert bundle is not None
            patient, from_note = read_bundle(bundle, as_of=on), None
        evaluation = evaluate_patient(patient, as_of=on)
        if trials:
            from actnav.trials.search import add_trials, load_trial_index

            loaded = load_trial_index(database_url)
            evaluation = add_trials(evaluation, patient, as_of=on, loaded=loaded, near=point)
        if from_note is not None:
            from actnav.patient.notes.report import mark_from_note

            evaluation = mark_from_note(evaluation, from_note, reviewed=False)
        renderers = {
            OutputFormat.JSON: report.render_json,
            OutputFormat.HTML: report.render_html,
            OutputFormat.TEXT: report.render_text,
        }
        text = renderers[chosen](evaluation)
        if not text.endswith("\n"):
            text += "\n"
        if out is None:
            typer.echo(text, nl=False)
            return
        write_atomic(out, text)
        typer.echo(report.render_summary(evaluation), nl=False)
        typer.echo(f"Wrote {chosen.value} report: {out}")

    _guard(run)


@app.command()
def extract(
    note: NoteArgument,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            dir_okay=False,
            help="Write the patient facts as a FHIR R4 Bundle (JSON), each resource with its words as evidence.",
            show_default=False,
        ),
    ] = None,
    as_of: AsOfOption = None,
    fmt: Annotated[
        FactsFormat,
        typer.Option("--format", "-f", case_sensitive=False, help="How to print the facts found."),
    ] = FactsFormat.TEXT,
    include_note: Annotated[
        bool,
        typer.Option("--include-note", help="Put the note itself in the bundle (a DocumentReference)."),
    ] = False,
    birth_date: BirthDateOption = None,
) -> None:
    """Read a clinical note: print every fact found for review, and write them as a FHIR Bundle.

    Negated, family-history, hypothetical and uncertain mentions are printed and marked "not
    used"; only the patient's own facts go to the bundle (docs/clinical-notes.md).
    """
    today = date.today()  # the only clock read in actnav
    on = as_of if as_of is not None else today

    def run() -> None:
        if out is not None and out.exists() and note.exists() and out.resolve() == note.resolve():
            raise InputError(
                "is the note; the bundle would overwrite it", where="--out", hint="choose another file"
            )
        from actnav.patient.notes.cli import (
            bundle_json,
            check_note_dates,
            extract_file,
            facts_json,
            facts_text,
        )

        check_note_dates(on, today=today, birth_date=birth_date)
        extraction = extract_file(note, as_of=on)
        listing = facts_json(extraction) if fmt is FactsFormat.JSON else facts_text(extraction)
        typer.echo(listing, nl=False)
        if out is not None:
            write_atomic(out, bundle_json(extraction, include_note=include_note, birth_date=birth_date))
            if fmt is FactsFormat.TEXT:
                typer.echo(f"Wrote FHIR bundle: {out}")

    _guard(run)


@app.command()
def match(
    bundle: BundleArgument,
    as_of: AsOfOption = None,
    near: NearOption = None,
    radius_km: Annotated[
        float | None,
        typer.Option(
            "--radius-km",
            min=0,
            metavar="N",
            help="Keep only trials with a recruiting site within N km of --near.",
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Overall status to keep, e.g. recruiting (repeat or comma-separate)."),
    ] = None,
    modality: Annotated[
        str | None,
        typer.Option(
            "--modality",
            metavar="CAR-T|TIL|TCR-T|CAR-NK/NK|'other cell therapy'",
            help="Keep only trials of this modality.",
            show_default=False,
        ),
    ] = None,
    all_trials: Annotated[
        bool, typer.Option("--all-trials", help="Include trials that are not adoptive cell therapy.")
    ] = False,
    database_url: DatabaseUrlOption = None,
    fmt: FormatOption = None,
    out: OutOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, metavar="N", help="Show the N best-ranked trials.")
    ] = 20,
) -> None:
    """Match a patient against clinical trials: verdict, score, why listed, every criterion.

    Trials come from the database when it holds any, else from the bundled offline records.
    Ranked by disease (trials for the patient's own disease first, trials for other diseases
    last), then verdict (eligible, needs information, not eligible), then relevance of diagnosis,
    modality and target, then distance to the nearest recruiting site.
    """
    on = as_of if as_of is not None else date.today()  # the only clock read in actnav
    chosen = resolve_format(fmt, out)

    def run() -> None:
        if radius_km is not None and near is None:
            raise InputError(
                "--radius-km needs --near", where="--radius-km", hint="add --near POSTCODE|LAT,LON"
            )
        if not bundle.is_file():
            what = "no such file" if not bundle.exists() else "not a file"
            raise InputError(what, where=str(bundle), hint="give the path of a FHIR Bundle")
        point = _near(near)
        wanted = _modality(modality)
        from actnav.trials.ctgov import normalise_statuses

        statuses = normalise_statuses(status or [])

        from actnav.care import report
        from actnav.patient.fhir import read_bundle
        from actnav.trials.search import load_trial_index, match_patient

        patient = read_bundle(bundle, as_of=on)
        result = match_patient(
            patient,
            as_of=on,
            loaded=load_trial_index(database_url),
            near=point,
            radius_km=radius_km,
            statuses=statuses,
            modality=wanted,
            act_only=not all_trials,
            limit=limit,
        )
        renderers = {
            OutputFormat.JSON: report.render_match_json,
            OutputFormat.HTML: report.render_match_html,
            OutputFormat.TEXT: report.render_match_text,
        }
        text = renderers[chosen](result)
        if not text.endswith("\n"):
            text += "\n"
        if out is None:
            typer.echo(text, nl=False)
            return
        write_atomic(out, text)
        typer.echo(report.render_match_summary(result), nl=False)
        typer.echo(f"Wrote {chosen.value} trial matches: {out}")

    _guard(run)


@knowledge_app.command("list")
def knowledge_list() -> None:
    """List the products and their indications, with label revision, one line each."""

    def run() -> None:
        from actnav.knowledge.loader import load_knowledge

        knowledge = load_knowledge()
        for product in knowledge.products:
            typer.echo(
                f"{product.id}  {product.brand}  {product.modality}  target {product.target}"
                f"  first approved {product.first_approval}  (file version {product.version})"
            )
            for ind in product.indications:
                until = f" until {ind.effective_until}" if ind.effective_until else ""
                typer.echo(
                    f"  {ind.id}  label {ind.label_revision}  in force {ind.effective_from}{until}"
                    f"  {ind.name}"
                )

    _guard(run)


@knowledge_app.command("schema")
def knowledge_schema(
    name: Annotated[
        SchemaName,
        typer.Argument(help="Which schema: the evaluation report or a product file."),
    ] = SchemaName.EVALUATION,
) -> None:
    """Print a JSON Schema (default: the report of ``actnav evaluate --format json``)."""

    def run() -> None:
        from actnav.care.report import schema_json

        if name is SchemaName.PRODUCT:
            from actnav.knowledge.models import Product

            typer.echo(schema_json(Product), nl=False)
        else:
            from actnav.eligibility.report_model import Evaluation

            typer.echo(schema_json(Evaluation), nl=False)

    _guard(run)


def main() -> None:
    """Console-script entry point (``actnav``): run the CLI and exit with its status.

    Every command runs under the same guard, so an error from any capability (including the
    mounted sub-apps) is one line on stderr with its documented exit code, never a traceback.
    """
    try:
        _guard(lambda: app(prog_name="actnav"))
    except typer.Exit as done:  # raised by the guard outside Click's own handling
        sys.exit(done.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
