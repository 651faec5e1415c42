"""What a student id may look like, shared by the event validator and the API."""

import re

__all__ = ["STUDENT_ID_PATTERN", "is_valid_student_id"]

# PRID-like ids (e.g. "ABCDE12345"), never names or e-mail addresses: letters, digits, . _ -
STUDENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_valid_student_id(value: str) -> bool:
    return bool(STUDENT_ID_PATTERN.fullmatch(value))
