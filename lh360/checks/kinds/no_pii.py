"""no_pii: no value in the listed columns looks like personal data (an untagged leak): a CPF or CNPJ with
valid check digits, an e-mail address, or a Brazilian phone number (lh360.pii has the patterns; the first
CPF- or CNPJ-shaped number of a value is the one whose check digits are tested).

The detection is one boolean expression per column, written once in Spark SQL and generated for every
dialect like every other check (character classes instead of backslashes, TRY_CAST, TRANSLATE, LPAD:
functions DuckDB, Athena/Trino and Databricks share). Sample rows are masked like every sample.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from lh360 import pii
from lh360.checks import sqlast
from lh360.checks.kinds.base import CompileContext, CompiledCheck, FailingRows, register

_V = "__lh360_v"  # the placeholder column the templates are written over
_TEXT = f"CAST({_V} AS STRING)"


def _digits_sql(pattern: str) -> str:
    """The first number shaped like `pattern` in the value, separators removed ('' or NULL when none)."""
    return f"TRANSLATE(REGEXP_EXTRACT({_TEXT}, '{pii.bounded(pattern)}', 2), './-', '')"


def _check_digits_sql(d: str, length: int, weights: tuple[tuple[int, ...], ...], cnpj: bool) -> str:
    """SQL: `d` (digits only) has `length` digits, not all alike, and both check digits right."""
    conds = [f"LENGTH({d}) = {length}", f"{d} <> LPAD('', {length}, SUBSTRING(CONCAT({d}, 'x'), 1, 1))"]
    for ws in weights:
        total = " + ".join(f"TRY_CAST(SUBSTRING({d}, {i + 1}, 1) AS INT) * {w}" for i, w in enumerate(ws))
        digit = f"TRY_CAST(SUBSTRING({d}, {len(ws) + 1}, 1) AS INT)"
        if cnpj:
            rest = f"(({total}) % 11)"
            expected = f"CASE WHEN {rest} < 2 THEN 0 ELSE 11 - {rest} END"
        else:
            expected = f"(({total}) * 10 % 11 % 10)"
        conds.append(f"{expected} = {digit}")
    return "(" + " AND ".join(conds) + ")"


def detector_sql(kind: str) -> str:
    """Spark SQL over the placeholder column: TRUE when its value holds a `kind` (cpf, cnpj, email, phone)."""
    if kind == "cpf":
        return _check_digits_sql(_digits_sql(pii.CPF_PATTERN), 11, pii.CPF_WEIGHTS, cnpj=False)
    if kind == "cnpj":
        return _check_digits_sql(_digits_sql(pii.CNPJ_PATTERN), 14, pii.CNPJ_WEIGHTS, cnpj=True)
    if kind == "email":
        return f"{_TEXT} RLIKE '{pii.EMAIL_PATTERN}'"
    if kind == "phone":
        return f"{_TEXT} RLIKE '{pii.bounded(pii.PHONE_PATTERN)}'"
    raise ValueError(f"no detector for {kind!r}")


@lru_cache(maxsize=16)
def _template(kinds: tuple[str, ...]) -> Any:
    import sqlglot

    return sqlglot.parse_one(" OR ".join(f"({detector_sql(k)})" for k in kinds), read="spark")


def condition(column: str, kinds: list[str]) -> Any:
    """The sqlglot condition: `column`'s value looks like one of `kinds`."""
    from sqlglot import exp

    tree = _template(tuple(kinds)).copy()
    for node in list(tree.find_all(exp.Column)):
        if node.name == _V:
            node.replace(sqlast.col(column))
    return exp.paren(tree)


@register
class NoPii(FailingRows):
    kind = "no_pii"
    noun = "rows with personal data"

    def names(self, check: Any) -> list[str]:
        return [check.name or "no_pii_" + "_".join(check.columns)]

    def where(self, spec: Any) -> str:
        return f" ({'/'.join(spec.detect)} in {', '.join(spec.columns)})"

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        cond = exp.or_(*[condition(c, check.detect) for c in check.columns])
        # a NULL from a value no pattern matched (Trino's REGEXP_EXTRACT) is no finding
        found = exp.func("COALESCE", exp.paren(cond), exp.false())
        return [
            CompiledCheck(
                name=names[0],
                threshold=f"≤ {check.max_failures} rows with {'/'.join(check.detect)}",
                column=",".join(check.columns),
                aliases=[ctx.aggregate(sqlast.count_if(found))],
                sample_sql=ctx.rows_where(found.copy()),
                **ctx.base(check),
            )
        ]
