"""The bedside identity check before infusion: the wristband against the bag label, both against the case.

Identifiers (family name, given name, date of birth, medical record number) are inputs to the check
only. They are never logged, printed or stored: results name the fields that differ, not their
values, and a case keeps only an Argon2id hash of its patient's identifiers (a fresh salt per case,
the same hasher as the account passwords) to confirm later that a wristband belongs to the case.

The check passes only when

* every identifier on the wristband equals the one on the bag label (after Unicode NFKC, case
  folding and collapsing spaces; no other leniency: ``O'Brien`` and ``OBrien`` differ),
* the bag's donation identification number is valid (check character) and is the expected one,
* the wristband matches the identity registered for the case.

Any missing or differing item refuses the infusion. Source: label D&A 2.2 (confirm the patient's
identity against the infusion bag; recollection) and the two-identifier rule of NPSG.01.01.01 (see
``data/logistics/vein-to-vein.yaml``).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actnav.errors import InputError
from actnav.logistics.custody import canonical_json
from actnav.logistics.din import parse_din

_hasher = PasswordHasher()

FIELDS: dict[str, str] = {
    "family_name": "family name",
    "given_name": "given name",
    "birth_date": "date of birth",
    "mrn": "medical record number",
}


class PatientIdentifiers(BaseModel):
    """The identifiers on a wristband (or registered for a case). Never logged or stored."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    family_name: str = Field(min_length=1, max_length=200)
    given_name: str = Field(min_length=1, max_length=200)
    birth_date: dt.date
    mrn: str = Field(min_length=1, max_length=64)

    def __repr__(self) -> str:  # keep identifiers out of tracebacks and logs
        return f"{type(self).__name__}(<redacted>)"

    __str__ = __repr__


class BagLabel(PatientIdentifiers):
    """The patient identifiers and the donation identification number printed on the infusion bag."""

    din: str = Field(min_length=1, max_length=40)


def _norm(value: str | dt.date) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def _canonical(person: PatientIdentifiers) -> str:
    return canonical_json({name: _norm(getattr(person, name)) for name in FIELDS})


def parse_identifiers(data: Any, *, where: str, bag: bool = False) -> PatientIdentifiers:
    """Validate identifiers read from a file; errors name the field, never the value.

    Args:
        data: ``{"family_name", "given_name", "birth_date": "YYYY-MM-DD", "mrn"}`` (a bag label adds
            ``"din"``).
        where: the input's name (the file or option) for errors.
        bag: read a bag label (:class:`BagLabel`).

    Raises:
        InputError: not an object, a field missing, unknown, empty or of the wrong type.
    """
    model: type[PatientIdentifiers] = BagLabel if bag else PatientIdentifiers
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise InputError(f"{field}: {first['msg']}", where=where) from None


def identity_hash(person: PatientIdentifiers) -> str:
    """An Argon2id hash (PHC string with its own random salt) of the normalised identifiers."""
    return _hasher.hash(_canonical(person))


def identity_matches(stored_hash: str, person: PatientIdentifiers) -> bool:
    """Whether ``person`` is the identity whose hash was stored for a case."""
    try:
        return _hasher.verify(stored_hash, _canonical(person))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class BedsideResult(BaseModel):
    """The outcome of a bedside check: passed, and if not, why (field names only, no values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passed: bool
    din: str | None = Field(description="The bag's DIN as read (None when unreadable).")
    mismatched: tuple[str, ...] = Field(
        description="Identifier fields that differ between wristband and bag."
    )
    reasons: tuple[str, ...]


def bedside_check(
    wristband: PatientIdentifiers,
    bag: BagLabel,
    *,
    expected_dins: tuple[str, ...],
    registered_hash: str | None,
) -> BedsideResult:
    """Compare the wristband with the bag label, and both with the case.

    Args:
        wristband: the identifiers on the patient's wristband.
        bag: the identifiers and DIN on the infusion bag label.
        expected_dins: the DINs (13 characters and check character) of the case's collections.
        registered_hash: the case's stored identity hash (None: not registered, which refuses).

    Returns:
        :class:`BedsideResult`; ``passed`` only when nothing differs.
    """
    reasons: list[str] = []
    mismatched = tuple(
        name for name in FIELDS if _norm(getattr(wristband, name)) != _norm(getattr(bag, name))
    )
    for name in mismatched:
        reasons.append(f"the {FIELDS[name]} on the bag label does not match the wristband")
    din_text: str | None = None
    try:
        din_text = parse_din(bag.din, where="bag.din").text
    except InputError as exc:
        reasons.append(f"the bag's DIN is not valid ({exc.message})")
    if din_text is not None and din_text not in expected_dins:
        reasons.append(f"the bag's DIN {din_text} is not a collection of this case")
    if registered_hash is None:
        reasons.append("no patient identity is registered for this case")
    elif not identity_matches(registered_hash, wristband):
        reasons.append("the wristband does not match the patient registered for this case")
    return BedsideResult(passed=not reasons, din=din_text, mismatched=mismatched, reasons=tuple(reasons))
