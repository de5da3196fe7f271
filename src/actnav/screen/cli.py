"""``actnav screen``: pre-screen a population (FHIR Bulk Data NDJSON or OMOP CDM) against every product label.

Heavy modules (pyarrow, Dask) are imported inside the commands, so ``actnav --help`` stays fast.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from actnav.clikit import guard
from actnav.errors import InputError

app = typer.Typer(
    help="Pre-screen many patients (FHIR Bulk Data NDJSON or OMOP CDM tables) against every product indication.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _as_of(text: str | None) -> date:
    if text is None:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"not a date (YYYY-MM-DD): {text!r}", where="--as-of") from exc


EARLIEST_SCREEN_DATE = date(1900, 1, 1)


def _screen_date(text: str | None) -> date:
    """``--as-of`` of a screening run: not after today (a screen predicts nothing about the
    future: later labels, trials and results are unknown), not before 1900 (a typing error)."""
    day = _as_of(text)
    if day > date.today():
        raise InputError(
            "the screening date is after today", where="--as-of", hint="give today or an earlier date"
        )
    if day < EARLIEST_SCREEN_DATE:
        raise InputError("the screening date is before 1900", where="--as-of")
    return day


@app.command("run")
def run_command(
    input_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of <Type>.ndjson files (a FHIR bulk export) or of OMOP CDM tables "
            "(person.csv / .csv.gz / .parquet, ...)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (screen.parquet, summary).")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Screening date (default: today).")] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Dask scheduler address (tcp://HOST:PORT; its workers must read --out), or "
            "'synchronous' to run in this process. Default: a local cluster.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Workers of the local cluster.")] = 2,
    partition_size: Annotated[
        int, typer.Option("--partition-size", min=1, help="Patients per partition.")
    ] = 2000,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    input_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="Input format: fhir, omop, or auto (Patient.ndjson -> fhir, a person table -> omop).",
        ),
    ] = "auto",
    trials: Annotated[
        str,
        typer.Option(
            "--trials",
            help="Bundled trials to screen besides the product indications: all, recruiting "
            "(overall status recruiting, not yet recruiting or enrolling by invitation) or none.",
        ),
    ] = "all",
) -> None:
    """Screen every patient of INPUT_DIR; a rerun skips the partitions already done."""

    def run() -> None:
        from actnav.screen.run import run_screen

        result = run_screen(
            input_dir,
            out,
            as_of=_screen_date(as_of),
            scheduler=scheduler,
            workers=workers,
            partition_size=partition_size,
            progress=progress,
            input_format=input_format,
            trials=trials,
        )
        typer.echo(
            f"Screened {result.patients} patients in {result.partitions} partitions "
            f"({result.screened} run now, {result.skipped} already done): {result.rows} rows"
        )
        for message, count in sorted(result.input_errors.items()):
            typer.echo(f"  {count} record(s) not read: {message}")
        typer.echo(f"Wrote {result.parquet}, {result.summary_text} and {result.summary_html}")

    guard(run)


@app.command("synthetic")
def synthetic_command(
    out: Annotated[Path, typer.Argument(help="Folder to write the export into.")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Number of patients.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")] = 1,
    as_of: Annotated[str | None, typer.Option("--as-of", help="No date after this (default: today).")] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="fhir (NDJSON bulk export) or omop (OMOP CDM v5.4 tables).")
    ] = "fhir",
    file_format: Annotated[
        str, typer.Option("--file-format", help="OMOP table files: csv, csv.gz or parquet.")
    ] = "csv",
) -> None:
    """Write a synthetic population (illustrative, not epidemiology) as a FHIR bulk or OMOP CDM export."""

    def run() -> None:
        from actnav.screen.synthetic import write_bulk, write_omop

        if output_format not in ("fhir", "omop"):
            raise InputError(
                f"unknown export format {output_format!r}", where="--format", hint="fhir or omop"
            )
        if output_format == "omop":
            counts = write_omop(out, count, seed=seed, as_of=_as_of(as_of), file_format=file_format)
        else:
            counts = write_bulk(out, count, seed=seed, as_of=_as_of(as_of))
        typer.echo(
            f"Wrote {count} synthetic patients to {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        )

    guard(run)
