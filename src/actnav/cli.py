"""The ``actnav`` command line: thin commands that call the capabilities.

::

    actnav --version
    actnav evaluate BUNDLE [--as-of YYYY-MM-DD] [--format json|html|text] [--out PATH]
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
import traceback
from collections.abc import Callable
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from actnav.errors import EXIT_INTERNAL, ActnavError, InputError

DEBUG_ENV = "ACTNAV_DEBUG"

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

    app.add_typer(toxicity_app, name="toxicity", help="Grade CRS and ICANS after infusion; chart a course.")
    app.add_typer(trials_app, name="trials", help="Import, sync and inspect clinical trial records.")


_mount_capabilities()


class OutputFormat(StrEnum):
    """Report formats of ``actnav evaluate``."""

    JSON = "json"
    HTML = "html"
    TEXT = "text"


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


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _guard(action: Callable[[], None]) -> None:
    """Run a command body, turning every failure into one line on stderr and an exit code."""
    try:
        action()
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise  # usage errors and deliberate exits: Typer prints them (exit 2 for usage)
    except ActnavError as err:
        if _debug():
            traceback.print_exc()
        typer.echo(f"actnav: error: {_one_line(str(err))}", err=True)
        raise typer.Exit(err.exit_code) from None
    except BrokenPipeError:
        # The reader went away (``actnav knowledge list | head``): stop quietly. Point stdout at
        # devnull so the interpreter's final flush does not raise a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        typer.echo("actnav: interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:
        if _debug():
            raise
        typer.echo(
            f"actnav: internal error: {type(exc).__name__}: {_one_line(str(exc))} (please report)",
            err=True,
        )
        raise typer.Exit(EXIT_INTERNAL) from None


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


@app.command()
def evaluate(
    bundle: Annotated[
        Path,
        typer.Argument(
            help="FHIR R4 Bundle (JSON) holding one patient.", metavar="BUNDLE", show_default=False
        ),
    ],
    as_of: Annotated[
        date | None,
        typer.Option(
            "--as-of",
            parser=parse_as_of,
            metavar="YYYY-MM-DD",
            help="Evaluation date (labels in force, ages, result freshness). Default: today.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="Report format. Default: from the --out suffix, else text.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            dir_okay=False,
            help="Write the report to this file (atomically) and print a summary.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Evaluate a patient against every FDA-approved product label.

    Per indication: eligible, not eligible or needs information, with each criterion's evidence
    and source; trial-derived fitness context; the work-up that would settle the unknowns.
    """
    on = as_of if as_of is not None else date.today()  # the only clock read in actnav
    chosen = resolve_format(fmt, out)

    def run() -> None:
        if not bundle.exists():
            raise InputError("no such file", where=str(bundle), hint="give the path of a FHIR Bundle")
        if not bundle.is_file():
            raise InputError("not a file", where=str(bundle), hint="give the path of a FHIR Bundle")

        # Heavy imports (fhir.resources, pint, the knowledge base, Jinja2) only on this path.
        from actnav.care import report
        from actnav.eligibility.evaluate import evaluate_patient
        from actnav.patient.fhir import read_bundle

        patient = read_bundle(bundle, as_of=on)
        evaluation = evaluate_patient(patient, as_of=on)
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
