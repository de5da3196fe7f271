"""What every ``actnav`` command shares: the error guard (one line, a documented exit code, never
a traceback) and the debug switch. Used by :mod:`actnav.cli` and the capability sub-apps
(``actnav trials``, ``actnav toxicity``), which cannot import :mod:`actnav.cli` (it mounts them).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

import typer

from actnav.errors import EXIT_INTERNAL, ActnavError

DEBUG_ENV = "ACTNAV_DEBUG"


def _debug() -> bool:
    """True when ``ACTNAV_DEBUG`` asks for tracebacks (1, true, yes, on)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def guard(action: Callable[[], None]) -> None:
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
