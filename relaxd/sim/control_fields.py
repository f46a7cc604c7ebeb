"""Strict checking of the control API's JSON bodies: known fields, right types, sane ranges."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

# A check returns the value to use, or raises ValueError saying what is wrong with it.
Check = Callable[[Any], Any]

MAX_COUNT = 10_000
MAX_DELAY_S = 3600.0


class ApiError(Exception):
    """An answer other than success: HTTP status and {"error": message}."""

    def __init__(self, status: int, message: str, allow: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.allow = allow  # for 405: the methods the path takes


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Field:
    check: Check
    default: Any = REQUIRED


def integer(low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {_kind(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, not {value}")
        return value

    return check


def number(low: float, high: float, *, low_open: bool = False) -> Check:
    """A JSON number in [low, high] (low excluded when low_open)."""

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {_kind(value)}")
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            bound = "above" if low_open else "at least"
            raise ValueError(f"must be {bound} {low:g} and at most {high:g}, not {value}")
        return float(value)

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_kind(value)}")
    return value


def text(max_chars: int, *, choices: Collection[str] | None = None, non_empty: bool = False) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {_kind(value)}")
        if choices is not None and value not in choices:
            if len(choices) <= 12:
                raise ValueError(f"unknown value {value!r} (known: {', '.join(sorted(choices))})")
            close = difflib.get_close_matches(value, choices, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else f"not one of the {len(choices)} known"
            raise ValueError(f"unknown value {value!r} ({hint})")
        if len(value) > max_chars or (non_empty and not value):
            raise ValueError(f"must be {'1' if non_empty else '0'} to {max_chars} characters long")
        return value

    return check


def xy_pair(value: Any) -> list[float]:
    if not (isinstance(value, list) and len(value) == 2):
        raise ValueError("must be a list of two numbers [x, y]")
    return [number(0.0, 1.0)(v) for v in value]


def only_true(value: Any) -> bool:
    if value is not True:
        raise ValueError("must be true (leave the field out otherwise)")
    return True


def count_field(default: int = 1) -> Field:
    return Field(integer(1, MAX_COUNT), default)


def parse(body: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """The fields of a JSON object body (None: no body, same as {}); ApiError 400 if it is wrong."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, f"body: must be a JSON object, not {_kind(body)}")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        known = ", ".join(fields) if fields else "none, send no body or {}"
        raise ApiError(400, f"{unknown[0]}: unknown field (known: {known})")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in body:
            if field.default is REQUIRED:
                raise ApiError(400, f"{name}: required")
            values[name] = field.default
            continue
        try:
            values[name] = field.check(body[name])
        except ValueError as exc:
            raise ApiError(400, f"{name}: {exc}") from None
    return values


def given(body: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """parse() for bodies whose fields are all optional and not defaulted: only those given, at least one."""
    values = {k: v for k, v in parse(body, fields).items() if v is not None}
    if not values:
        raise ApiError(400, f"body: give at least one of {', '.join(fields)}")
    return values


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object"
    )
