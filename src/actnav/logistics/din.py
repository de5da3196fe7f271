"""Collection identifiers in the style of the ISBT 128 donation identification number (DIN).

A DIN is 13 characters: the facility identification number (5 characters: a capital letter or digit,
then 4 digits), the year (2 digits) and a sequence number (6 digits). The eye-readable check
character is computed over those 13 characters with ISO/IEC 7064 modulus 37-2: each character's
value (0-9 -> 0-9, A-Z -> 10-35, ``*`` -> 36) is multiplied by 2 to the power of its position from
the right (1 for the last), the products are summed, and the check value is
``(38 - sum mod 37) mod 37``, written with the same table.

Source: JPAC Red Book Annex 2 "ISBT 128 check character calculation" (worked example
``G123 498 654 321`` -> ``H``); ICCBBA IG-033 (structure of the DIN). The flag characters of the
bar code are not modelled: actnav prints and reads the 13 characters and the check character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from actnav.errors import InputError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
_FACILITY = re.compile(r"^[A-Z0-9][0-9]{4}$")
_DIN = re.compile(r"^([A-Z0-9][0-9]{4})([0-9]{2})([0-9]{6})([0-9A-Z*])?$")


def mod37_2(text: str) -> int:
    """The ISO/IEC 7064 MOD 37-2 check value (0-36) of ``text`` (characters 0-9, A-Z, ``*``).

    Raises:
        InputError: ``text`` is empty or has a character outside the alphabet.
    """
    if not text:
        raise InputError("cannot compute a check character of an empty string", where="din")
    total = 0
    for position, char in enumerate(reversed(text), start=1):
        value = ALPHABET.find(char)
        if value < 0:
            raise InputError(f"character {char!r} is not allowed (0-9, A-Z, *)", where="din")
        total += value * 2**position
    return (38 - total % 37) % 37


def check_character(text: str) -> str:
    """The eye-readable ISO/IEC 7064 MOD 37-2 check character of ``text`` (e.g. ``G123498654321`` -> ``H``)."""
    return ALPHABET[mod37_2(text)]


@dataclass(frozen=True)
class Din:
    """A donation identification number: ``facility`` + ``year`` + ``sequence`` and its check character."""

    facility: str
    year: int
    sequence: int

    @property
    def code(self) -> str:
        """The 13 characters, e.g. ``G123498654321``."""
        return f"{self.facility}{self.year:02d}{self.sequence:06d}"

    @property
    def check(self) -> str:
        """The eye-readable check character."""
        return check_character(self.code)

    @property
    def text(self) -> str:
        """The 13 characters followed by the check character (how actnav stores and prints a DIN)."""
        return self.code + self.check

    @property
    def display(self) -> str:
        """Grouped for reading aloud: ``G1234 98 654321 H``."""
        return f"{self.facility} {self.year:02d} {self.sequence:06d} {self.check}"


def make_din(facility: str, year: int, sequence: int) -> Din:
    """A DIN from its parts.

    Args:
        facility: the facility identification number, 5 characters (a capital letter or digit, then
            4 digits), e.g. ``G1234``.
        year: the collection year, two digits (0-99; 2026 is given as 26).
        sequence: 1 to 999999, unique within the facility and year.

    Raises:
        InputError: a part is malformed (``where`` names it).
    """
    facility = facility.strip().upper()
    if not _FACILITY.match(facility):
        raise InputError(
            f"{facility!r} is not a facility identification number (a letter or digit, then 4 digits)",
            where="facility",
        )
    if isinstance(year, bool) or not isinstance(year, int) or not 0 <= year <= 99:
        raise InputError(f"the year must be two digits (0-99), got {year!r}", where="year")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not 1 <= sequence <= 999_999:
        raise InputError(f"the sequence number must be 1-999999, got {sequence!r}", where="sequence")
    return Din(facility=facility, year=year, sequence=sequence)


def parse_din(text: str, *, require_check: bool = True, where: str = "din") -> Din:
    """Read a DIN as printed: 13 characters and the check character, spaces ignored.

    Args:
        text: e.g. ``G1234 98 654321 H`` or ``G123498654321H``; a leading ``=`` (the bar-code data
            identifier) is ignored.
        require_check: when False, 13 characters without the check character are accepted too.
        where: the field named in errors.

    Returns:
        The DIN.

    Raises:
        InputError: malformed, or the check character does not match (a mistyped or misread number).
    """
    compact = re.sub(r"\s+", "", str(text)).upper().removeprefix("=")
    found = _DIN.match(compact)
    if found is None:
        raise InputError(
            f"{text!r} is not a donation identification number (5-character facility, 2-digit year, "
            "6-digit sequence, check character)",
            where=where,
        )
    facility, year, sequence, check = found.groups()
    din = Din(facility=facility, year=int(year), sequence=int(sequence))
    if check is None:
        if require_check:
            raise InputError(f"{text!r} has no check character", where=where, hint=f"expected {din.check}")
        return din
    if check != din.check:
        raise InputError(
            f"check character {check!r} does not match {din.code} (expected {din.check!r}): "
            "the number was mistyped or misread",
            where=where,
        )
    return din
