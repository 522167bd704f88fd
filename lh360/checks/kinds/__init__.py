"""Check kinds: one small module per kind, each with how its results are named, compiled and judged.

A kind is a `CheckKind` registered under the `kind` of its spec model (lh360.spec.CHECK_KINDS):

    names(check)                  the result names one entry gives (not_null on two columns: two results)
    compile(check, names, ctx)    CompiledChecks: columns of the relation's fused query (ctx.aggregate) or
                                  a query of their own, and a query for sample failing rows
    judge(compiled, values, result, ctx)   the verdict from the values the queries returned

To add a kind: its model in lh360/spec.py (and CHECK_KINDS), a module here that registers it, and its
import at the bottom of this file.
"""

from __future__ import annotations

# every kind registers itself on import
from lh360.checks.kinds import (  # noqa: F401
    accepted_values,
    expression,
    freshness,
    no_pii,
    not_null,
    range,
    reconcile,
    relationships,
    row_count,
    unique,
)
from lh360.checks.kinds.base import KINDS, CheckKind, CompileContext, CompiledCheck, JudgeContext, kind_of

__all__ = ["KINDS", "CheckKind", "CompileContext", "CompiledCheck", "JudgeContext", "kind_of"]
