"""Path and query parameters every route reads the same way, refused with a 400 problem."""

from __future__ import annotations

import re
from datetime import date

from starlette.requests import Request

from api.problems import ProblemError, problem_type
from schemas.ids import is_valid_student_id

__all__ = [
    "COURSE_PATTERN",
    "TUTOR_ID_PATTERN",
    "YEAR_PATTERN",
    "cohort_params",
    "only_query",
    "query_date",
    "student_id_param",
    "tutor_id_param",
]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Staff ids as the identity provider and reference data write them (e-mail-like allowed).
TUTOR_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
#: Course codes are the institution's own ("BSC-MARBIO", "BSc Physics"): printable, no '|'
#: (it joins course and year in a cohort key).
COURSE_PATTERN = re.compile(r"^[^\x00-\x1f\x7f|]{1,128}$")
YEAR_PATTERN = re.compile(r"^[0-9]{1,2}$")


def _invalid(what: str, rule: str) -> ProblemError:
    return ProblemError(
        400, f"Invalid {what}", rule, type_=problem_type(f"invalid-{what.replace(' ', '-')}")
    )


def student_id_param(request: Request) -> str:
    """The path's student id, checked before anything is looked up with it."""
    value: str = request.path_params["student_id"]
    if not is_valid_student_id(value):
        raise _invalid(
            "student id",
            "A student id is 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit.",
        )
    return value


def tutor_id_param(request: Request) -> str:
    value: str = request.path_params["tutor_id"]
    if not TUTOR_ID_PATTERN.fullmatch(value):
        raise _invalid(
            "tutor id",
            "A tutor id is 1-128 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit.",
        )
    return value


def cohort_params(request: Request) -> tuple[str, int]:
    """The path's course and year of study."""
    course: str = request.path_params["course"]
    year: str = request.path_params["year"]
    if not COURSE_PATTERN.fullmatch(course):
        raise _invalid("course", "A course is 1-128 printable characters other than '|'.")
    if not YEAR_PATTERN.fullmatch(year):
        raise _invalid("year", "A year of study is a whole number from 0 to 99.")
    return course, int(year)


def only_query(request: Request, *names: str) -> None:
    """Refuse parameters the route does not know, so a typo (``?from=``) is not ignored."""
    unknown = sorted(set(request.query_params) - set(names))
    if unknown or any(len(request.query_params.getlist(n)) > 1 for n in names):
        raise ProblemError(
            400,
            "Invalid query",
            f"This resource takes at most one each of: {', '.join(names)}.",
            type_=problem_type("invalid-query"),
        )


def query_date(request: Request, name: str, default: date) -> date:
    """``?name=YYYY-MM-DD``, or ``default`` when absent."""
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
        if day.year in (date.min.year, date.max.year):  # ranges around it would overflow
            raise ValueError(text)
        return day
    except ValueError:
        raise ProblemError(
            400,
            "Invalid date",
            f"{name} must be a date as YYYY-MM-DD (years 2 to 9998).",
            type_=problem_type("invalid-date"),
        ) from None
