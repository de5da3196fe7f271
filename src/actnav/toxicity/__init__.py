"""Toxicity after infusion: CRS and ICANS grading (ASTCT 2019), the ICE score, a course over time.

Public API (pure: no database, network or file I/O):

* :func:`ice_score` (``actnav.toxicity.ice``): the 10-point ICE from its five items.
* :func:`grade_crs` (``actnav.toxicity.crs``): ASTCT CRS grade 0-4, or ``None`` when not met.
* :func:`grade_icans` (``actnav.toxicity.icans``): ASTCT ICANS grade 0-4 (ICE or CAPD), worst domain.
* :func:`grade_assessment` / :func:`grade_course` (``actnav.toxicity.course``): every time point of a
  course, the maximum grades, onset day and duration, with the inputs that set each grade.
* :func:`parse_input` (``actnav.toxicity.models``): validate JSON input, errors naming the field.

At the doors: ``actnav.toxicity.chart`` (matplotlib, imported on use), ``actnav.toxicity.cli``
(the ``actnav toxicity`` commands) and ``actnav.store.toxicity`` (database tables).

The grade tables are data under ``actnav/data/toxicity/`` (``astct-crs.yaml``, ``astct-icans.yaml``,
``ice.yaml``, ``capd.yaml``), each row citing Lee DW et al., Biol Blood Marrow Transplant
2019;25:625-638.
"""

from __future__ import annotations

from actnav.toxicity.course import AssessmentGrade, CourseGrade, grade_assessment, grade_course
from actnav.toxicity.crs import CrsGrade, grade_crs
from actnav.toxicity.icans import IcansGrade, grade_icans
from actnav.toxicity.ice import ice_score
from actnav.toxicity.models import Assessment, Course, parse_input

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
