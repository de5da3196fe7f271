"""Toxicity after infusion: CRS and ICANS grading (ASTCT 2019), the ICE score, a course over time.

Public API (pure: no database, network or file I/O):

* :func:`ice_score` (``actnav.toxicity.ice``): the 10-point ICE from its five items.
* :func:`grade_crs` (``actnav.toxicity.crs``): ASTCT CRS grade 0-4, or ``None`` when not met.
* :func:`grade_icans` (``actnav.toxicity.icans``): ASTCT ICANS grade 0-4 (ICE or CAPD), worst domain.
* :func:`grade_assessment` / :func:`grade_course` (``actnav.toxicity.course``): every time point of a
  course, the maximum grades, onset day and duration, with the inputs that set each grade.
* :func:`parse_input` (``actnav.toxicity.models``): validate JSON input, errors naming the field.

Around them: ``actnav.toxicity.guidance`` (CRS/ICANS management for a grade and weight, the
tocilizumab dose check, the product's monitoring plan), ``actnav.toxicity.report`` (the grade
output: grades with the guidance for every assessment and the course maximum),
``actnav.toxicity.risk`` and ``risk_input`` (EASIX, m-EASIX, CAR-HEMATOTOX, HScore),
``actnav.toxicity.iec_hs``, ``actnav.toxicity.ctcae`` (CTCAE v5.0) and ``actnav.toxicity.icaht``.

At the doors: ``actnav.toxicity.chart`` (matplotlib, imported on use), ``actnav.toxicity.cli``
(the ``actnav toxicity`` commands) and ``actnav.store.toxicity`` (database tables). The inputs,
outputs and rules are documented in ``docs/toxicity.md``.

The grade tables are data under ``actnav/data/toxicity/`` (``astct-crs.yaml``, ``astct-icans.yaml``,
``ice.yaml``, ``capd.yaml``), each row citing Lee DW et al., Biol Blood Marrow Transplant
2019;25:625-638.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Names resolved on first use (PEP 562), so ``import actnav.toxicity`` (and the CLI's start-up,
# which mounts ``actnav toxicity``) does not load the grade tables and models.
_LAZY = {
    "AssessmentGrade": "course",
    "CourseGrade": "course",
    "grade_assessment": "course",
    "grade_course": "course",
    "CrsGrade": "crs",
    "grade_crs": "crs",
    "IcansGrade": "icans",
    "grade_icans": "icans",
    "ice_score": "ice",
    "Assessment": "models",
    "Course": "models",
    "parse_input": "models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'actnav.toxicity' has no attribute {name!r}")
    return getattr(import_module(f"actnav.toxicity.{module}"), name)


__all__ = [
    "Assessment",
    "AssessmentGrade",
    "Course",
    "CourseGrade",
    "CrsGrade",
    "IcansGrade",
    "grade_assessment",
    "grade_course",
    "grade_crs",
    "grade_icans",
    "ice_score",
    "parse_input",
]
