"""The exception tree of actnav, and the exit codes the CLI maps it to.

::

    ActnavError                 base; never raised itself          exit 1
    ├── InputError              the user's input is unusable        exit 2
    │   ├── FhirImportError     a FHIR resource or element is wrong exit 2
    │   └── UnitError           a quantity's unit cannot be converted exit 2
    └── DataFileError           a packaged clinical data file is invalid exit 3

Exit codes (documented once, here and in the README):

* ``0`` success
* ``1`` an unexpected internal error (a bug: please report it)
* ``2`` bad input (invalid JSON, not a Bundle, unconvertible unit, a missing birth date,
  a date after the evaluation date, an unknown option value)
* ``3`` a packaged data file failed validation (the installation is broken)

Missing clinical data is *not* an error: the eligibility engine reports it as ``unknown``
with what would settle it. Exceptions are for broken input and broken code.

Messages name where the problem is (file, resource and element, rule id) and never contain
patient identifiers such as names or medical record numbers; resource ids may appear because
they are needed to find the element.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_DATA_FILE = 3


class ActnavError(Exception):
    """Base of every error actnav raises on purpose.

    Args:
        message: what went wrong, in one sentence.
        where: where it went wrong (``Observation/abc.valueQuantity.unit``, ``file.yaml: rule x``).
        hint: what the user can do about it, if anything.
    """

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class InputError(ActnavError):
    """The user's input cannot be used as given (exit code 2)."""

    exit_code = EXIT_BAD_INPUT


class FhirImportError(InputError):
    """A FHIR document, resource or element is invalid for actnav (exit code 2)."""


class UnitError(InputError):
    """A quantity's unit is unknown or cannot be converted to the unit a rule needs (exit 2)."""


class DataFileError(ActnavError):
    """A packaged clinical data file failed validation (exit code 3)."""

    exit_code = EXIT_DATA_FILE
