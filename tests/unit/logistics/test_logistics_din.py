"""ISBT 128-style donation identification numbers and their ISO/IEC 7064 MOD 37-2 check character.

Published example: JPAC Red Book Annex 2 "ISBT 128 check character calculation" — donation number
G123 498 654 321: weighted sum 148354, mod 37 = 21, 38 - 21 = 17, checksum 17, eye-readable check
character H (character values 0-9, A-Z = 10-35, * = 36).
"""

from __future__ import annotations

import itertools

import pytest

from actnav.errors import InputError
from actnav.logistics.din import ALPHABET, check_character, make_din, mod37_2, parse_din

JPAC = "G123498654321"


def test_the_published_example_gives_checksum_17_and_h() -> None:
    assert mod37_2(JPAC) == 17
    assert check_character(JPAC) == "H"


def test_the_published_example_parses_as_facility_year_sequence() -> None:
    din = parse_din("G123 498 654 321 H")
    assert (din.facility, din.year, din.sequence) == ("G1234", 98, 654321)
    assert din.text == "G123498654321H"
    assert din.display == "G1234 98 654321 H"


def test_the_alphabet_maps_digits_letters_and_star_to_0_to_36() -> None:
    assert ALPHABET.index("0") == 0 and ALPHABET.index("A") == 10 and ALPHABET.index("Z") == 35
    assert ALPHABET.index("*") == 36 and len(ALPHABET) == 37


def test_a_check_character_can_be_the_star() -> None:
    # Find a number whose check value is 36 (any exists: the check value runs over all of 0-36).
    for n in range(1, 5000):
        code = f"G123426{n:06d}"
        if mod37_2(code) == 36:
            assert check_character(code) == "*"
            assert parse_din(code + "*").sequence == n
            return
    pytest.fail("no check value 36 found")


def test_every_single_character_substitution_is_detected() -> None:
    good = JPAC
    for position, char in itertools.product(range(len(good)), "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
        if good[position] == char:
            continue
        wrong = good[:position] + char + good[position + 1 :]
        assert check_character(wrong) != "H", wrong


def test_every_adjacent_transposition_is_detected() -> None:
    for code in (JPAC, "W000026000123", "A999925999999"):
        check = check_character(code)
        for i in range(len(code) - 1):
            if code[i] == code[i + 1]:
                continue
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            assert check_character(swapped) != check, swapped


def test_a_wrong_check_character_is_refused_naming_the_expected_one() -> None:
    with pytest.raises(InputError) as caught:
        parse_din("G123498654321J")
    assert "expected 'H'" in caught.value.message


@pytest.mark.parametrize(
    "text", ["G12349865432H", "G1234986543210H", "GG23498654321H", "g123498654321h-", "", "1234"]
)
def test_malformed_numbers_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_din(text)


def test_lower_case_spaces_and_the_barcode_equals_sign_are_accepted() -> None:
    assert parse_din("=g1234 98 654321 h").text == "G123498654321H"


def test_a_number_without_its_check_character_needs_require_check_false() -> None:
    with pytest.raises(InputError):
        parse_din(JPAC)
    assert parse_din(JPAC, require_check=False).check == "H"


def test_make_din_validates_its_parts() -> None:
    assert make_din("g1234", 26, 1).text == "G123426000001" + check_character("G123426000001")
    for facility, year, sequence in (
        ("G123", 26, 1),
        ("G1234", 100, 1),
        ("G1234", 26, 0),
        ("G1234", 26, 1_000_000),
    ):
        with pytest.raises(InputError):
            make_din(facility, year, sequence)
