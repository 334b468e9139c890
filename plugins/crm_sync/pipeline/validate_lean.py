"""The same checks as Great Expectations runs in validate, evaluated with pandas alone, for the fast lane.

Importing GX and building its ephemeral context costs seconds before the first row is checked:
most of a fast-lane run, for the handful of rows a webhook names. The checks stay declared once
(``validate._checks``: rule, GX expectation, arguments); this module evaluates those six expectation
kinds as GX's pandas engine does (column-map expectations skip missing values, except the null
checks; uniqueness flags every copy; bounds are inclusive; a regex is searched, not matched whole).
tests/unit/test_validate_lean.py holds both evaluators to the same verdicts.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def expectation_type(kind: str) -> str:
    """GX's name of an expectation class as its results carry it: ExpectColumn... -> expect_column..."""
    return SNAKE.sub("_", kind).lower()


def _missing(column: pd.Series) -> pd.Series:
    return column.map(lambda value: value is None or (isinstance(value, float) and value != value))


def _unexpected(frame: pd.DataFrame, kind: str, kwargs: dict[str, Any]) -> pd.Series:
    """A boolean per row: the row fails the expectation."""
    column = frame[kwargs["column"]] if kwargs["column"] in frame else pd.Series([None] * len(frame), frame.index)
    missing = _missing(column).astype(bool)
    present = column[~missing]
    if kind == "ExpectColumnValuesToNotBeNull":
        return missing.astype(bool)
    if kind == "ExpectColumnValuesToBeNull":
        return ~missing.astype(bool)
    if kind == "ExpectColumnValuesToBeUnique":
        flags = present.duplicated(keep=False)
    elif kind == "ExpectColumnValuesToBeBetween":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        flags = present.map(lambda v: (low is not None and v < low) or (high is not None and v > high))
    elif kind == "ExpectColumnValuesToMatchRegex":
        pattern = re.compile(kwargs["regex"])
        flags = present.map(lambda v: pattern.search(str(v)) is None)
    elif kind == "ExpectColumnValuesToBeInSet":
        flags = ~present.isin(kwargs["value_set"])
    else:
        raise ValueError(f"the lean validate does not evaluate {kind}; run Great Expectations for it")
    bad = pd.Series(False, index=frame.index, dtype=bool)
    if not present.empty:  # every value missing: nothing to check (GX skips missing values too)
        bad.loc[present.index] = flags.astype(bool).to_numpy()
    return bad


def evaluate(frame: pd.DataFrame, checks: list[tuple[str, str, dict[str, Any]]]
             ) -> list[tuple[str, str, str | None, list[int]]]:
    """(rule, expectation type, column, positions of the failing rows) per check, in the checks' order."""
    frame = frame.reset_index(drop=True)
    results = []
    for rule, kind, kwargs in checks:
        bad = _unexpected(frame, kind, kwargs)
        results.append((rule, expectation_type(kind), kwargs.get("column"), [int(i) for i in bad[bad].index]))
    return results
