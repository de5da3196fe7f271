"""The lifecycle of a therapy case: its steps, the allowed moves between them, and what each needs.

A case is at one step (:class:`Step`) at a time. Moving to another step is a transition; it is
allowed when the move is in :data:`MOVES` and the facts the target step needs are recorded
(:func:`unmet_requirements`). A refused transition raises :class:`TransitionRefused` with every
reason. Every transition is recorded with who, when and why (:mod:`actnav.store.logistics`).

The steps, in order::

    referral -> evaluation -> review -> authorisation -> collection -> shipped_to_manufacturing
    -> manufacturing -> release_testing -> shipped_back -> received -> lymphodepletion
    -> infused (day 0) -> monitoring -> follow_up -> closed

``withdrawn`` ends a case before infusion (a "do not proceed" decision, a failed manufacture that
will not be repeated, the patient's choice, death); ``closed`` ends it after infusion. Going back is
allowed where practice needs it: a failed manufacture returns to ``collection`` (new collection),
a failed release to ``manufacturing`` (re-manufacture) or ``collection``.

What a step needs (all of it checked again at infusion):

* ``review``: the evaluation report attached.
* ``authorisation``: the review's decision to proceed, with the product and the indication.
* ``shipped_to_manufacturing``: a collection whose custody log shows it shipped.
* ``shipped_back``: the release recorded (the certificate checked against the labelled dose, within
  the label, or out of specification with the decision to proceed documented).
* ``received``: the product's custody log shows it received (or stored) at the centre.
* ``lymphodepletion``: its start and end dates.
* ``infused``: the release and the lymphodepletion recorded, the infusion day within the label's
  window after lymphodepletion (or the deviation documented), the bag's DIN one of the case's
  collections with its custody log at ``thawed``, and a passed bedside identity check.

For TIL products the collection is a tumour resection rather than an apheresis.

When things happened (:func:`check_event_time`): a recorded step or custody event happened, so it
may not be dated after "now" (the caller's clock, with :data:`CLOCK_SKEW` of tolerance for clocks
that differ) nor before the previous step of its case (or the previous custody event of its
collection). Planned dates belong to the schedule (a slip), not to the record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from actnav.errors import InputError


class Step(StrEnum):
    """The steps of a case, in their usual order."""

    REFERRAL = "referral"
    EVALUATION = "evaluation"
    REVIEW = "review"
    AUTHORISATION = "authorisation"
    COLLECTION = "collection"
    SHIPPED_TO_MANUFACTURING = "shipped_to_manufacturing"
    MANUFACTURING = "manufacturing"
    RELEASE_TESTING = "release_testing"
    SHIPPED_BACK = "shipped_back"
    RECEIVED = "received"
    LYMPHODEPLETION = "lymphodepletion"
    INFUSED = "infused"
    MONITORING = "monitoring"
    FOLLOW_UP = "follow_up"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


ORDER: tuple[Step, ...] = tuple(s for s in Step if s is not Step.WITHDRAWN)
"""The steps in their usual order (``withdrawn`` is not on the path)."""

TITLES: dict[Step, str] = {
    Step.REFERRAL: "Referral",
    Step.EVALUATION: "Evaluation",
    Step.REVIEW: "Multidisciplinary review and decision",
    Step.AUTHORISATION: "Insurance authorisation",
    Step.COLLECTION: "Collection (apheresis, or tumour resection for TIL)",
    Step.SHIPPED_TO_MANUFACTURING: "Shipment to manufacturing",
    Step.MANUFACTURING: "Manufacturing",
    Step.RELEASE_TESTING: "Release testing",
    Step.SHIPPED_BACK: "Shipment back to the centre",
    Step.RECEIVED: "Receipt at the centre",
    Step.LYMPHODEPLETION: "Lymphodepletion",
    Step.INFUSED: "Infusion (day 0)",
    Step.MONITORING: "Monitoring after infusion",
    Step.FOLLOW_UP: "Follow-up visits",
    Step.CLOSED: "Closed",
    Step.WITHDRAWN: "Withdrawn",
}

_BEFORE_INFUSION = ORDER[: ORDER.index(Step.INFUSED)]

MOVES: dict[Step, frozenset[Step]] = {
    **{step: frozenset({ORDER[i + 1], Step.WITHDRAWN}) for i, step in enumerate(_BEFORE_INFUSION)},
    Step.INFUSED: frozenset({Step.MONITORING, Step.CLOSED}),
    Step.MONITORING: frozenset({Step.FOLLOW_UP, Step.CLOSED}),
    Step.FOLLOW_UP: frozenset({Step.CLOSED}),
    Step.CLOSED: frozenset(),
    Step.WITHDRAWN: frozenset(),
}
MOVES[Step.MANUFACTURING] = MOVES[Step.MANUFACTURING] | {Step.COLLECTION}
MOVES[Step.RELEASE_TESTING] = MOVES[Step.RELEASE_TESTING] | {Step.MANUFACTURING, Step.COLLECTION}

BRIDGING_STEPS: frozenset[Step] = frozenset(ORDER[ORDER.index(Step.REVIEW) : ORDER.index(Step.INFUSED)])
"""Steps during which bridging therapy may be recorded (from the review to lymphodepletion)."""

INFUSABLE_CUSTODY = "thawed"

CLOCK_SKEW = dt.timedelta(minutes=5)
"""How far after "now" an event may be dated: clocks of the caller's devices differ by a few minutes."""

FREE_TEXT_MAX = 500
"""Longest free text of a deviation or a custody detail (characters); it is a note, not a narrative."""


def parse_step(text: str, *, where: str = "step") -> Step:
    """A step from its name (case and ``-``/space ignored: ``shipped-back``, ``Release testing``).

    Raises:
        InputError: not a step name (the hint lists them).
    """
    key = str(text).strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return Step(key)
    except ValueError:
        raise InputError(
            f"unknown step {text!r}", where=where, hint="one of " + ", ".join(s.value for s in Step)
        ) from None


@dataclass(frozen=True)
class Release:
    """A recorded product release: the certificate's status and, if out of specification, the decision."""

    din: str | None
    status: str  # "within_label" | "out_of_specification"
    accepted_deviation: str | None = None

    @property
    def acceptable(self) -> bool:
        """Within the label, or out of specification with the decision to proceed documented."""
        return self.status == "within_label" or bool(self.accepted_deviation)


@dataclass(frozen=True)
class LymphodepletionDates:
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class CaseFacts:
    """What the lifecycle checks know of a case (read from the store in the same transaction).

    ``custody`` maps each of the case's DINs to its custody event types in log order.
    """

    step: Step
    product_id: str
    indication_id: str | None
    report_attached: bool = False
    release: Release | None = None
    lymphodepletion: LymphodepletionDates | None = None
    identity_registered: bool = False
    custody: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class InfusionCheck:
    """What an infusion adds: the bag, the bedside result, the day, the label window."""

    din: str
    bedside_passed: bool
    bedside_reasons: tuple[str, ...]
    infusion_date: dt.date
    window_min_days: float | None
    window_max_days: float | None
    deviation: str | None = None


class TransitionRefused(InputError):
    """A transition is not allowed; ``reasons`` lists why (exit code 2 in the CLI)."""

    def __init__(self, step: Step, target: Step, reasons: list[str]):
        self.reasons = tuple(reasons)
        super().__init__(
            f"cannot move from {step.value} to {target.value}: " + "; ".join(reasons), where="step"
        )


def unmet_requirements(
    facts: CaseFacts,
    target: Step,
    *,
    decision: str | None = None,
    infusion: InfusionCheck | None = None,
) -> list[str]:
    """Why ``facts.step -> target`` is not allowed (empty when it is).

    Args:
        facts: the case as recorded.
        target: the step to move to.
        decision: for ``review -> authorisation``: ``proceed`` (needs the product and indication set);
            a ``not_proceed`` decision moves to ``withdrawn``.
        infusion: for ``-> infused``: the bag, the bedside result and the label window.

    Returns:
        The reasons, one sentence each.
    """
    reasons: list[str] = []
    if target not in MOVES[facts.step]:
        allowed = ", ".join(sorted(s.value for s in MOVES[facts.step])) or "none (the case is finished)"
        reasons.append(f"{target.value} does not follow {facts.step.value} (allowed: {allowed})")
        if target is Step.INFUSED:
            reasons += _infusion_requirements(facts, infusion)
        return reasons
    if target is Step.REVIEW and not facts.report_attached:
        reasons.append("the evaluation report is not attached")
    if target is Step.AUTHORISATION:
        if decision != "proceed":
            reasons.append(
                "the review's decision to proceed is not recorded (a decision not to proceed withdraws the case)"
            )
        if not facts.indication_id:
            reasons.append("the indication is not chosen")
    if target is Step.SHIPPED_TO_MANUFACTURING and not any("shipped" in ev for ev in facts.custody.values()):
        reasons.append("no collection of this case is recorded as shipped in the custody log")
    if target is Step.SHIPPED_BACK and (facts.release is None or not facts.release.acceptable):
        reasons.append(_release_reason(facts.release))
    if target is Step.RECEIVED and not any(
        ev and ev[-1] in ("received", "stored") for ev in facts.custody.values()
    ):
        reasons.append("no product of this case is recorded as received at the centre in the custody log")
    if target is Step.LYMPHODEPLETION and facts.lymphodepletion is None:
        reasons.append("the lymphodepletion start and end dates are not given")
    if (
        target is Step.LYMPHODEPLETION
        and facts.lymphodepletion is not None
        and facts.lymphodepletion.end < facts.lymphodepletion.start
    ):
        reasons.append("lymphodepletion ends before it starts")
    if target is Step.INFUSED:
        reasons += _infusion_requirements(facts, infusion)
    return reasons


def _release_reason(release: Release | None) -> str:
    if release is None:
        return "the product release is not recorded (check the certificate against the labelled dose)"
    return "the product is out of specification and the decision to proceed is not documented"


def _infusion_requirements(facts: CaseFacts, infusion: InfusionCheck | None) -> list[str]:
    reasons: list[str] = []
    if facts.release is None or not facts.release.acceptable:
        reasons.append(_release_reason(facts.release))
    ld = facts.lymphodepletion
    if ld is None:
        reasons.append("lymphodepletion is not recorded")
    if not facts.identity_registered:
        reasons.append(
            "the patient's identity is not registered for this case (needed for the bedside check)"
        )
    if infusion is None:
        reasons.append("infusion needs the bag's DIN and a bedside identity check")
        return reasons
    if not infusion.bedside_passed:
        reasons.append("the bedside check failed: " + "; ".join(infusion.bedside_reasons))
    events = facts.custody.get(infusion.din)
    if events is None:
        reasons.append(f"the bag's DIN {infusion.din} is not a collection of this case")
    elif not events or events[-1] != INFUSABLE_CUSTODY:
        last = events[-1] if events else "nothing"
        reasons.append(f"the bag's custody log ends at {last!r}; it must be thawed before infusion")
    if facts.release is not None and facts.release.din and facts.release.din != infusion.din:
        reasons.append(f"the released product is {facts.release.din}, not the bag {infusion.din}")
    if ld is not None:
        gap = (infusion.infusion_date - ld.end).days
        if gap < 0:
            reasons.append("the infusion day is before lymphodepletion ends")
        low, high = infusion.window_min_days, infusion.window_max_days
        outside = (low is not None and gap < low) or (high is not None and gap > high)
        if outside and gap >= 0 and not infusion.deviation:
            window = window_text(low, high)
            reasons.append(
                f"infusion {gap} days after lymphodepletion ends is outside the label's window ({window}); "
                "document the deviation to proceed"
            )
    return reasons


def _when(moment: dt.datetime) -> str:
    utc = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    return utc.isoformat(timespec="minutes").replace("+00:00", "Z")


def check_event_time(
    at: dt.datetime,
    *,
    now: dt.datetime,
    previous: dt.datetime | None = None,
    previous_what: str = "step",
    where: str = "at",
) -> None:
    """Refuse an event dated in the future or before the event it follows.

    Args:
        at: when the event happened (timezone-aware; a naive value is read as UTC).
        now: the caller's clock (the ``recorded_at`` of the write).
        previous: when the previous step of the case (or custody event of the collection) happened.
        previous_what: what that previous event was, for the message (``step review``).
        where: the input field named by the error.

    Raises:
        InputError: ``at`` is more than :data:`CLOCK_SKEW` after ``now``, or before ``previous``
            (the message gives both times, in UTC).
    """

    def aware(moment: dt.datetime) -> dt.datetime:
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment

    if aware(at) > aware(now) + CLOCK_SKEW:
        minutes = int(CLOCK_SKEW.total_seconds() // 60)
        raise InputError(
            f"{_when(at)} is in the future (now is {_when(now)}, {minutes} minutes of clock difference "
            "allowed): record a step once it has happened; a planned date belongs to the schedule "
            "(a slip)",
            where=where,
        )
    if previous is not None and aware(at) < aware(previous):
        raise InputError(
            f"{_when(at)} is before the previous {previous_what} ({_when(previous)}): "
            "a step is dated when it happened, after the one it follows",
            where=where,
        )


def check_free_text(text: str | None, *, where: str, limit: int = FREE_TEXT_MAX) -> str | None:
    """Free text stripped (None when empty), refused when longer than ``limit`` characters.

    Free text is a short note; it must not carry patient identifiers (names are not detected).

    Raises:
        InputError: longer than ``limit`` (``where``).
    """
    value = (text or "").strip()
    if len(value) > limit:
        raise InputError(
            f"{len(value)} characters: at most {limit} (a short note; never a patient identifier)",
            where=where,
        )
    return value or None


def window_text(low: float | None, high: float | None) -> str:
    """A label window in words: ``3 days``, ``2 to 14 days``, ``at least 1 days``."""
    if low is not None and high is not None:
        return f"{low:g} days" if low == high else f"{low:g} to {high:g} days"
    if low is not None:
        return f"at least {low:g} days"
    return f"at most {high:g} days"


def check_transition(
    facts: CaseFacts,
    target: Step,
    *,
    decision: str | None = None,
    infusion: InfusionCheck | None = None,
) -> None:
    """Raise :class:`TransitionRefused` unless ``facts.step -> target`` is allowed (see
    :func:`unmet_requirements`)."""
    reasons = unmet_requirements(facts, target, decision=decision, infusion=infusion)
    if reasons:
        raise TransitionRefused(facts.step, target, reasons)
