"""The ICE score from its items (Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638, Table 7:
orientation 4, naming 3, commands 1, writing 1, attention 1; 10 = no impairment)."""

from __future__ import annotations

from typing import Any

import pytest

from actnav.errors import InputError
from actnav.toxicity import ice_score

FULL = {"orientation": 4, "naming": 3, "commands": 1, "writing": 1, "attention": 1}


def test_full_marks_are_ten() -> None:
    assert ice_score(**FULL) == 10


def test_zero_on_every_item_is_zero() -> None:
    assert ice_score(orientation=0, naming=0, commands=0, writing=0, attention=0) == 0


def test_items_are_added() -> None:
    assert ice_score(orientation=3, naming=2, commands=1, writing=0, attention=1) == 7


@pytest.mark.parametrize(
    ("item", "value", "message"),
    [
        ("orientation", 5, "5 is outside the ICE orientation item range (0-4 points)"),
        ("orientation", -1, "-1 is outside the ICE orientation item range (0-4 points)"),
        ("naming", 4, "4 is outside the ICE naming item range (0-3 points)"),
        ("commands", 2, "2 is outside the ICE commands item range (0-1 points)"),
        ("writing", 2, "2 is outside the ICE writing item range (0-1 points)"),
        ("attention", 2, "2 is outside the ICE attention item range (0-1 points)"),
    ],
)
def test_an_item_out_of_range_is_refused_naming_the_item(item: str, value: int, message: str) -> None:
    with pytest.raises(InputError) as caught:
        ice_score(**{**FULL, item: value})
    assert caught.value.where == f"ice.{item}"
    assert caught.value.message == message


@pytest.mark.parametrize("value", [True, 2.0, "3"])
def test_an_item_must_be_a_whole_number(value: Any) -> None:
    with pytest.raises(InputError) as caught:
        ice_score(**{**FULL, "naming": value})
    assert caught.value.where == "ice.naming"
