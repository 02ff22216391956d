"""How numbers are written in what people send us: plain ASCII decimal notation only.

Python's float() also reads "２７" (full-width digits), "٢٧", "2_7", "inf" and "nan"; none of
those is a coordinate a person meant. The API and the importers both read numbers by this rule.
"""
import re

# 27, -27.83, .5, 1e-3, +2.5E+2 — digits 0-9 and a dot, an optional sign and exponent.
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
PLAIN_INTEGER = re.compile(r"[+-]?[0-9]+")


def is_plain_number(text: str) -> bool:
    return PLAIN_NUMBER.fullmatch(text) is not None


def is_plain_integer(text: str) -> bool:
    return PLAIN_INTEGER.fullmatch(text) is not None
