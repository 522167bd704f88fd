"""Spark type names in specs → DuckDB types: the sqlglot-free fast path answers exactly as sqlglot does."""

from __future__ import annotations

import pytest

from lh360.types import _DECIMAL, _SIMPLE, _parse_type_sqlglot, parse_type

CASES = [
    *_SIMPLE,
    *(name.upper() for name in _SIMPLE),
    " Timestamp ",
    "decimal(18,2)",
    "DECIMAL(10, 0)",
    "dec(5,1)",
    "numeric( 4 , 2 )",
    "decimal(38,0)",
]


@pytest.mark.parametrize("text", CASES)
def test_fast_path_equals_sqlglot(text: str) -> None:
    assert _SIMPLE.get(text.strip().lower()) or _DECIMAL.fullmatch(text.strip()), "not on the fast path"
    assert parse_type(text) == _parse_type_sqlglot(text)


@pytest.mark.parametrize("text", ["array<string>", "struct<a:int,b:string>", "map<string,int>", "varchar(10)"])
def test_other_types_go_through_sqlglot(text: str) -> None:
    assert parse_type(text) == _parse_type_sqlglot(text)


@pytest.mark.parametrize("text", ["void", "strin", "decimal(18,"])
def test_not_a_type(text: str) -> None:
    with pytest.raises(ValueError):
        parse_type(text)
