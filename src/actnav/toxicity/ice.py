"""The ICE score (Immune effector Cell-associated Encephalopathy), from its five items.

The items, their maximum points and the ICANS grade bands of the total live in
``data/toxicity/ice.yaml`` (:class:`IceTable`); this module adds them up and checks their ranges.

Source: Lee DW et al., ASTCT consensus grading for cytokine release syndrome and neurologic
toxicity associated with immune effector cells. Biol Blood Marrow Transplant 2019;25:625-638
(ICE table and ICANS grading for adults).
"""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actnav.errors import InputError
from actnav.knowledge.loader import load_data
from actnav.knowledge.models import SourceRef
from actnav.toxicity.models import GradingTableFile

ICE_FILE = "toxicity/ice.yaml"


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IceItem(_Row):
    """One item of the ICE: its id (an argument of :func:`ice_score`) and its maximum points."""

    id: str
    max_points: int = Field(ge=1)
    text: str
    source: SourceRef


class ScoreBand(_Row):
    """A band of a score (inclusive ``min``-``max``) and the ICANS grade it gives."""

    id: str
    min: int = Field(ge=0)
    max: int = Field(ge=0)
    grade: int = Field(ge=0, le=4)
    text: str
    source: SourceRef

    @model_validator(mode="after")
    def _ordered(self) -> ScoreBand:
        if self.min > self.max:
            raise ValueError(f"band {self.id!r}: min {self.min} is above max {self.max}")
        return self

    def contains(self, score: int) -> bool:
        """Whether ``score`` lies in this band (both ends inclusive)."""
        return self.min <= score <= self.max


def check_bands(bands: tuple[ScoreBand, ...], low: int, high: int, name: str) -> None:
    """Check that ``bands`` cover ``low``-``high`` exactly once each, raising ``ValueError`` if not."""
    for score in range(low, high + 1):
        hits = [band.id for band in bands if band.contains(score)]
        if len(hits) != 1:
            raise ValueError(f"{name}: score {score} is in {len(hits)} bands {hits}; expected exactly one")
    outside = [band.id for band in bands if band.min < low or band.max > high]
    if outside:
        raise ValueError(f"{name}: bands {outside} reach outside {low}-{high}")


class IceTable(GradingTableFile):
    """``data/toxicity/ice.yaml``: the ICE items, the total and its grade bands."""

    items: tuple[IceItem, ...]
    total_max: int
    grade_bands: tuple[ScoreBand, ...]

    @model_validator(mode="after")
    def _consistent(self) -> IceTable:
        expected = ("orientation", "naming", "commands", "writing", "attention")
        ids = tuple(item.id for item in self.items)
        if ids != expected:
            raise ValueError(f"items must be {list(expected)} in that order, not {list(ids)}")
        total = sum(item.max_points for item in self.items)
        if total != self.total_max:
            raise ValueError(f"item maxima add up to {total}, not total_max {self.total_max}")
        check_bands(self.grade_bands, 0, self.total_max, "grade_bands")
        return self

    def item(self, item_id: str) -> IceItem:
        """The item with id ``item_id``.

        Raises:
            KeyError: no such item.
        """
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def band(self, score: int) -> ScoreBand:
        """The grade band of an ICE total (the table covers 0 to ``total_max`` exactly once)."""
        return next(band for band in self.grade_bands if band.contains(score))


@cache
def load_ice_table() -> IceTable:
    """Load and validate ``data/toxicity/ice.yaml`` once per process.

    Raises:
        DataFileError: the file is unreadable or invalid (names the file, row id and field).
    """
    return load_data(IceTable, ICE_FILE)


def item_problem(item_id: str, points: int) -> str | None:
    """The message for an ICE item outside its range, or ``None`` if it is in range.

    Args:
        item_id: ``orientation``, ``naming``, ``commands``, ``writing`` or ``attention``.
        points: points earned on the item.
    """
    top = load_ice_table().item(item_id).max_points
    if not 0 <= points <= top:
        return f"{points} is outside the ICE {item_id} item range (0-{top} points)"
    return None


def total_problem(score: int) -> str | None:
    """The message for an ICE total outside 0-10, or ``None`` if it is in range."""
    top = load_ice_table().total_max
    if not 0 <= score <= top:
        return f"{score} is outside the ICE score range (0-{top})"
    return None


def ice_score(orientation: int, naming: int, commands: int, writing: int, attention: int) -> int:
    """The 10-point ICE score from the points earned on each item (10 = no impairment).

    Args:
        orientation: orientation to year, month, city and hospital, 0-4 points.
        naming: names three objects, 0-3 points.
        commands: follows simple commands, 0-1 point.
        writing: writes a standard sentence, 0-1 point.
        attention: counts backwards from 100 by 10, 0-1 point.

    Returns:
        The ICE score, 0-10.

    Raises:
        InputError: an item is not a whole number or is outside its range; ``where`` names the item
            (``ice.naming``).
        DataFileError: ``data/toxicity/ice.yaml`` is invalid.

    Source:
        Lee DW et al., Biol Blood Marrow Transplant 2019;25:625-638, ICE table
        (``data/toxicity/ice.yaml``).

    Example:
        >>> ice_score(orientation=4, naming=3, commands=1, writing=0, attention=1)
        9
    """
    items = {
        "orientation": orientation,
        "naming": naming,
        "commands": commands,
        "writing": writing,
        "attention": attention,
    }
    for item_id, points in items.items():
        if isinstance(points, bool) or not isinstance(points, int):
            raise InputError(f"{points!r} is not a whole number of points", where=f"ice.{item_id}")
        problem = item_problem(item_id, points)
        if problem:
            raise InputError(problem, where=f"ice.{item_id}")
    return sum(items.values())
