"""Bad input never produces a grade: it raises InputError naming the field (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from actnav.errors import EXIT_BAD_INPUT, InputError
from actnav.toxicity import grade_crs, grade_icans
from actnav.toxicity.models import Assessment, Course, export_schema, fahrenheit_to_celsius, parse_input

ROOT = Path(__file__).resolve().parents[3]
T0 = "2025-06-02T08:00:00+02:00"


def _course(*assessments: dict[str, Any]) -> dict[str, Any]:
    return {"weight_kg": 70, "infusion_date": "2025-06-01", "assessments": list(assessments)}


def _error(data: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_input(data)
    return caught.value


def test_an_implausible_temperature_names_the_assessment_and_field() -> None:
    data = _course(*({"time": T0} for _ in range(3)), {"time": T0, "temp_c": 60})
    error = _error(data)
    assert str(error) == "assessments[3].temp_c: 60 is not a plausible body temperature (25-45 degrees C)"
    assert error.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temp_c", 60, "60 is not a plausible body temperature (25-45 degrees C)"),
        ("temp_c", 24.9, "24.9 is not a plausible body temperature (25-45 degrees C)"),
        ("temp_c", 45.1, "45.1 is not a plausible body temperature (25-45 degrees C)"),
        ("temp_f", 140, "140 is not a plausible body temperature (77-113 degrees F)"),
        ("oxygen_flow_l_min", -1, "-1 is not a plausible oxygen flow (0-80 L/min)"),
        ("oxygen_flow_l_min", 81, "81 is not a plausible oxygen flow (0-80 L/min)"),
        ("age_years", -2, "-2 is not a plausible age (0-120 years)"),
        ("ice_score", 11, "11 is outside the ICE score range (0-10)"),
        ("ice_score", -1, "-1 is outside the ICE score range (0-10)"),
        ("capd_score", 33, "33 is outside the CAPD score range (0-32)"),
    ],
)
def test_out_of_range_numbers_are_refused(field: str, value: float, message: str) -> None:
    extra = {"oxygen_device": "facemask"} if field == "oxygen_flow_l_min" else {}
    error = _error({field: value, **extra})
    assert (error.where, error.message) == (field, message)


@pytest.mark.parametrize(
    ("data", "where", "fragment"),
    [
        ({"oxygen_device": "nasal_prongs"}, "oxygen_device", "unknown value 'nasal_prongs'"),
        ({"vasopressors": ["dobutamine"]}, "vasopressors[0]", "unknown vasopressor 'dobutamine'"),
        ({"vasopressors": ["norepinephrine", 3]}, "vasopressors[1]", "not a vasopressor name"),
        ({"consciousness": "drowsy"}, "consciousness", "unknown value 'drowsy'"),
        ({"seizure": "yes"}, "seizure", "unknown value 'yes'"),
        ({"raised_icp_signs": ["headache"]}, "raised_icp_signs[0]", "unknown value 'headache'"),
        ({"drugs_given": [{"drug": "aspirin"}]}, "drugs_given[0].drug", "unknown value 'aspirin'"),
        (
            {"ice": {"orientation": 5, "naming": 3, "commands": 1, "writing": 1, "attention": 1}},
            "ice.orientation",
            "0-4",
        ),
        ({"ice": {"orientation": 4, "naming": 3}}, "ice.commands", "required"),
        ({"ice_score": 7.5}, "ice_score", "valid integer"),
        ({"temp_c": "38.5"}, "temp_c", "valid number"),
        ({"hypotension": "yes"}, "hypotension", "valid boolean"),
        ({"temp_c": 38.0, "temp_f": 102.0}, "temp_f", "disagrees with temp_c 38"),
        ({"ice_score": 9, "capd_score": 3}, "age_years", "age_years decides"),
        ({"oxygen_flow_l_min": 3}, "oxygen_flow_l_min", "with oxygen_device 'none'"),
        (
            {
                "ice_score": 9,
                "ice": {"orientation": 4, "naming": 3, "commands": 1, "writing": 1, "attention": 1},
            },
            "ice_score",
            "differs",
        ),
        ({"temperature": 38.2}, "temperature", "unknown field; allowed: time, age_years"),
        (
            {
                "ice": {
                    "orientation": 4,
                    "naming": 3,
                    "commands": 1,
                    "writing": 1,
                    "attention": 1,
                    "recall": 1,
                }
            },
            "ice.recall",
            "allowed: orientation",
        ),
        ({"time": 1717315200}, "time", "ISO 8601"),
        ({"time": "yesterday"}, "time", "datetime"),
    ],
)
def test_bad_assessment_fields_are_named(data: dict[str, Any], where: str, fragment: str) -> None:
    error = _error(data)
    assert error.where == where
    assert fragment in error.message


@pytest.mark.parametrize(
    ("data", "where", "fragment"),
    [
        (_course({"time": T0}, {"temp_c": 38}), "assessments[1].time", "needs a time"),
        (_course(), "assessments", "at least 1"),
        ({"assessments": [{"time": T0}]}, "weight_kg", "required"),
        ({**_course({"time": T0}), "weight_kg": 0.2}, "weight_kg", "plausible body weight"),
        ({**_course({"time": T0}), "patient_name": "x"}, "patient_name", "unknown field; allowed: weight_kg"),
        (_course({"time": T0}, {"time": "2025-06-02T09:00:00"}), "assessments[1].time", "UTC offset"),
        (_course({"time": T0, "extra": 1}), "assessments[0].extra", "unknown field"),
    ],
)
def test_bad_course_fields_are_named(data: dict[str, Any], where: str, fragment: str) -> None:
    error = _error(data)
    assert error.where == where
    assert fragment in error.message


def test_not_an_object_is_refused() -> None:
    assert "expected a JSON object" in _error([1, 2]).message


def test_the_calculators_raise_the_same_errors() -> None:
    with pytest.raises(InputError, match="temp_c: 60 is not a plausible"):
        grade_crs(temp_c=60)
    with pytest.raises(InputError, match=r"oxygen_flow_l_min: -0\.5 is not a plausible oxygen flow"):
        grade_crs(temp_c=38.5, oxygen_device="low_flow_nasal_cannula", oxygen_flow_l_min=-0.5)
    with pytest.raises(InputError, match="oxygen_device: unknown value 'helmet'"):
        grade_crs(temp_c=38.5, oxygen_device="helmet")
    with pytest.raises(InputError, match=r"ice\.naming: 4 is outside"):
        grade_icans(ice={"orientation": 4, "naming": 4, "commands": 1, "writing": 1, "attention": 1})


def test_a_course_age_reaches_assessments_without_their_own() -> None:
    course = parse_input({**_course({"time": T0, "capd_score": 3}), "age_years": 12})
    assert isinstance(course, Course)
    assert course.assessments[0].age_years == 12
    # The first age given in a course is used by later assessments, so a child's ICE is still refused.
    error = _error(_course({"time": T0, "age_years": 10, "capd_score": 2}, {"time": T0, "ice_score": 9}))
    assert error.where == "assessments[1].ice_score"


def test_celsius_and_fahrenheit_may_both_be_given_when_they_agree() -> None:
    assert grade_crs(temp_c=38.0, temp_f=100.4).temp_c == 38.0
    assert grade_crs(temp_c=37.9, temp_f=100.4).grade is None  # agree within 0.1 C; temp_c is used


def test_vasopressor_aliases_are_stored_under_the_agent_id() -> None:
    assessment = parse_input({"vasopressors": ["Noradrenaline", "AVP"]})
    assert isinstance(assessment, Assessment)
    assert assessment.vasopressors == ("norepinephrine", "vasopressin")


@pytest.mark.parametrize(("temp_f", "temp_c"), [(100.4, 38.0), (98.6, 37.0), (104.0, 40.0), (100.3, 37.94)])
def test_fahrenheit_converts_to_celsius(temp_f: float, temp_c: float) -> None:
    assert fahrenheit_to_celsius(temp_f) == temp_c


def test_the_published_schema_equals_the_generated_one() -> None:
    committed = (ROOT / "schemas" / "toxicity-input.schema.json").read_text(encoding="utf-8")
    assert committed == export_schema(), (
        "run: python -c 'from actnav.toxicity.models import export_schema' ..."
    )


def test_the_schema_accepts_an_assessment_and_a_course_and_rejects_unknown_keys() -> None:
    schema = json.loads(export_schema())
    jsonschema.validate({"temp_c": 38.2, "oxygen_device": "facemask"}, schema)
    jsonschema.validate(_course({"time": T0, "ice": FULL_ICE}), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"temp_c": 60}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"temperature": 38.2}, schema)


def test_export_schema_writes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "toxicity-input.schema.json"
    assert export_schema(path) == path.read_text(encoding="utf-8")


FULL_ICE = {"orientation": 4, "naming": 3, "commands": 1, "writing": 1, "attention": 1}


def test_an_implausible_year_is_refused_naming_the_field() -> None:
    # Year 0001 with a UTC offset would overflow when the course is put in time order.
    with pytest.raises(InputError, match=r"assessments\[0\]\.time: the year 1 is not plausible"):
        parse_input(
            {"weight_kg": 70, "assessments": [{"time": "0001-01-01T00:30:00+02:00", "temperature_c": 38.5}]}
        )
