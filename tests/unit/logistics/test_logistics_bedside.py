"""The bedside identity check: any differing identifier, DIN or case refuses; identifiers are never kept.

Rule: label D&A 2.2 (confirm the patient's identity against the infusion bag; do not infuse on a
mismatch) and the two-identifier rule (name, date of birth, medical record number).
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.logistics.conftest import OTHER_PATIENT, PATIENT, person

from actnav.errors import InputError
from actnav.logistics.bedside import (
    FIELDS,
    BagLabel,
    bedside_check,
    identity_hash,
    identity_matches,
    parse_identifiers,
)
from actnav.logistics.din import make_din

DIN = make_din("G1234", 26, 1).text
OTHER_DIN = make_din("G1234", 26, 2).text


@pytest.fixture
def registered() -> str:
    return identity_hash(person())


def bag(**changes: Any) -> BagLabel:
    return BagLabel.model_validate({**PATIENT, "din": DIN, **changes})


def check(label: BagLabel, registered: str | None, wristband: dict[str, Any] | None = None) -> Any:
    return bedside_check(person(wristband), label, expected_dins=(DIN,), registered_hash=registered)


def test_the_matching_bag_passes(registered: str) -> None:
    result = check(bag(), registered)
    assert result.passed and result.reasons == () and result.din == DIN


def test_case_and_spacing_differences_are_not_mismatches(registered: str) -> None:
    result = check(bag(family_name="  DOE ", given_name="jane", mrn="mrn-0001"), registered)
    assert result.passed


DIFFERENT = {
    "family_name": "Dow",
    "given_name": "Janet",
    "birth_date": "1970-02-01",
    "mrn": "MRN-0010",
}


@pytest.mark.parametrize("field", list(FIELDS))
def test_every_differing_identifier_is_refused(field: str, registered: str) -> None:
    result = check(bag(**{field: DIFFERENT[field]}), registered)
    assert not result.passed
    assert result.mismatched == (field,)
    assert FIELDS[field] in result.reasons[0]


@pytest.mark.parametrize("field", list(FIELDS))
def test_reasons_never_contain_the_identifier_values(field: str, registered: str) -> None:
    result = check(bag(**{field: DIFFERENT[field]}), registered)
    text = " ".join(result.reasons) + result.model_dump_json()
    for value in (*PATIENT.values(), *DIFFERENT.values()):
        assert str(value) not in text


def test_a_bag_for_another_patient_is_refused_every_time(registered: str) -> None:
    other_bag = BagLabel.model_validate({**OTHER_PATIENT, "din": OTHER_DIN})
    for _ in range(3):
        # wristband of this patient, bag of another one
        result = check(other_bag, registered)
        assert not result.passed
        assert set(result.mismatched) == set(FIELDS)
        assert any("not a collection of this case" in r for r in result.reasons)
    # the other patient's wristband and bag agree with each other but not with this case
    result = check(other_bag, registered, wristband=OTHER_PATIENT)
    assert not result.passed
    assert result.mismatched == ()
    assert any("registered for this case" in r for r in result.reasons)
    assert any("not a collection of this case" in r for r in result.reasons)


def test_a_bag_with_this_patients_names_but_another_din_is_refused(registered: str) -> None:
    result = check(bag(din=OTHER_DIN), registered)
    assert not result.passed and result.mismatched == ()
    assert result.reasons == (f"the bag's DIN {OTHER_DIN} is not a collection of this case",)


def test_a_misread_din_is_refused(registered: str) -> None:
    result = check(bag(din=DIN[:-1] + ("A" if DIN[-1] != "A" else "B")), registered)
    assert not result.passed and result.din is None
    assert "not valid" in result.reasons[0]


def test_without_a_registered_identity_the_check_refuses() -> None:
    result = check(bag(), None)
    assert result.reasons == ("no patient identity is registered for this case",)


def test_the_stored_hash_is_argon2id_salted_and_holds_no_identifier() -> None:
    first, second = identity_hash(person()), identity_hash(person())
    assert first.startswith("$argon2id$") and first != second  # a fresh salt each time
    for value in PATIENT.values():
        assert str(value).lower() not in first.lower()
    assert identity_matches(first, person()) and identity_matches(second, person())
    assert not identity_matches(first, person(OTHER_PATIENT))
    assert not identity_matches("not a hash", person())


def test_identifiers_do_not_show_in_repr() -> None:
    assert "Doe" not in repr(person()) and "MRN" not in str(person())


def test_parse_errors_name_the_field_not_the_value() -> None:
    with pytest.raises(InputError) as caught:
        parse_identifiers({**PATIENT, "birth_date": "02/01/1970"}, where="--wristband")
    assert caught.value.where == "--wristband"
    assert "birth_date" in caught.value.message and "1970" not in caught.value.message
    with pytest.raises(InputError) as missing:
        parse_identifiers(PATIENT, where="--bag", bag=True)
    assert "din" in missing.value.message
    with pytest.raises(InputError):
        parse_identifiers({**PATIENT, "room": "12"}, where="--wristband")
