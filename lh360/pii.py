"""Personal data by design (LGPD): what lh360 does with the columns a spec tags in `silver.pii`.

A tag names the kind of data (cpf, cnpj, email, phone, name, address, birthdate, other) and what each layer
may keep of it:

    silver: keep | hash | mask | drop     how silver (and quarantine) store the column
    gold:   hash | mask | drop            what gold queries see of it (default drop: no raw PII in gold)

* `hash` is a keyed HMAC-SHA256 of the value as text (lower-case hex, 64 characters). The key comes from
  the environment (`LH360_PII_KEY`, or a file named by `LH360_PII_KEY_FILE`: a mounted secret), never from
  YAML. It is stable, so joins, `unique` and `count(DISTINCT …)` still work on hashed columns; without the
  key a hash cannot be recomputed from a guessed CPF.
* `mask` keeps a documented shape and a few characters (MASKS); a masked column is text.
* `drop` leaves the column out.

Silver applies its rule after the expectations (rules judge the real value) and before dedupe and merge,
so silver and quarantine never hold more than the rule allows. Gold queries read each silver table through
a view where every tagged column is as its `gold` rule says; `gold.<name>.allow_pii: [col]` is the explicit
exception (the query reads the column as silver stores it), and `lint` names a gold query that reads a
column hidden from it.

Where nobody looks for data (check samples, error messages, logs) values of tagged columns are masked,
and `redact` masks anything that looks like a CPF or CNPJ (valid check digits), an e-mail address or a
phone number. The same detectors back the `no_pii` check (lh360/checks/kinds/no_pii.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lh360.errors import ConfigError, UsageError
from lh360.redact import (  # noqa: F401 - lh360.pii is where callers find them
    CNPJ_PATTERN,
    CNPJ_WEIGHTS,
    CPF_PATTERN,
    CPF_WEIGHTS,
    EMAIL_PATTERN,
    MASKS,
    PHONE_PATTERN,
    bounded,
    cnpj_valid,
    cpf_valid,
    detect,
    mask_value,
    redact,
)
from lh360.sql import SQLError, parse_expression, parse_query, quote, table_refs
from lh360.sql import quote_ident as q

if TYPE_CHECKING:
    from lh360.config import Project
    from lh360.spec import Pii, TableSpec

KEY_ENV = "LH360_PII_KEY"
KEY_FILE_ENV = "LH360_PII_KEY_FILE"
MIN_KEY_BYTES = 16
HASH_MACRO = "lh360_pii_hash"

# ---- the key and the hash ---------------------------------------------------------------------------


def key_bytes(why: str = "a column is hashed") -> bytes:
    """The HMAC key: `LH360_PII_KEY`, else the content of the file `LH360_PII_KEY_FILE` (stripped).
    A missing or short key is a usage error (exit 2): hashing without a secret would let anyone recompute a
    CPF's hash from a list of CPFs."""
    text = os.environ.get(KEY_ENV)
    source = KEY_ENV
    if not text and os.environ.get(KEY_FILE_ENV):
        source = os.environ[KEY_FILE_ENV]
        try:
            text = Path(source).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"{KEY_FILE_ENV}={source}: cannot read the PII key ({exc.strerror or exc})") from None
    if not text:
        raise UsageError(
            f"{why}, which needs the PII key: export {KEY_ENV} (at least {MIN_KEY_BYTES} characters, kept out "
            f"of YAML and of the repository) or {KEY_FILE_ENV}=<file holding it>; use the same key on every run, "
            "or hashes stop matching"
        )
    key = text.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise UsageError(f"the PII key from {source} is {len(key)} bytes; use at least {MIN_KEY_BYTES}")
    return key


def hmac_hex(value: str, key: bytes | None = None) -> str:
    """HMAC-SHA256 of `value` (UTF-8) as lower-case hex: what `hash` stores."""
    return hmac.digest(key if key is not None else key_bytes(), value.encode("utf-8"), "sha256").hex()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer keys (RFC 2104): the key padded to the block, XOR 0x36 and 0x5c."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def install_hash(con, key: bytes | None = None) -> None:
    """Define `lh360_pii_hash(x)` on a DuckDB connection: HMAC-SHA256 of CAST(x AS VARCHAR) in SQL (two
    sha256 over the padded key). The key lives in the macro only; SQL that `plan` shows names the macro."""
    inner, outer = _pads(key if key is not None else key_bytes())
    con.execute(
        f"CREATE OR REPLACE TEMP MACRO {HASH_MACRO}(x) AS CASE WHEN x IS NULL THEN NULL ELSE "
        f"sha256(unhex('{outer.hex()}') || unhex(sha256(unhex('{inner.hex()}') || encode(CAST(x AS VARCHAR))))) END"
    )


# ---- masks ---------------------------------------------------------------------------------------------


def mask_sql(kind: str, expr: str) -> str:
    """DuckDB SQL masking `expr` to its kind's shape (the same result as mask_value)."""
    v = f"CAST(({expr}) AS VARCHAR)"
    d = f"regexp_replace({v}, '[^0-9]', '', 'g')"
    if kind in ("cpf", "cnpj", "phone"):
        prefix, n = {"cpf": ("***.***.***-", 2), "cnpj": ("**.***.***/****-", 2), "phone": ("(**) *****-", 4)}[kind]
        body = f"CASE WHEN length({d}) >= {n} THEN '{prefix}' || right({d}, {n}) ELSE '***' END"
    elif kind == "email":
        body = (
            f"CASE WHEN strpos({v}, '@') > 0 THEN left({v}, 1) || '***@' || string_split({v}, '@')[-1] ELSE '***' END"
        )
    elif kind == "name":
        body = f"CASE WHEN length(trim({v})) > 0 THEN left(trim({v}), 1) || '***' ELSE '***' END"
    elif kind == "birthdate":
        body = f"left({v}, 4) || '-**-**'"
    else:
        body = "'***'"
    return f"CASE WHEN ({expr}) IS NULL THEN NULL ELSE {body} END"


# ---- silver ------------------------------------------------------------------------------------------------


def silver_rules(spec: TableSpec) -> dict[str, Pii]:
    return dict(spec.silver.pii) if spec.silver is not None else {}


def needs_key(rules: dict[str, Any]) -> bool:
    return any(getattr(r, "silver", r) == "hash" for r in rules.values())


def protect(spec: TableSpec, names: list[str], inner: str) -> tuple[str, list[str]]:
    """(SQL over the query `inner`, whose columns include `names`, with each tagged column as silver stores
    it; the data columns left). Untouched when the spec tags nothing."""
    rules = {c: r for c, r in silver_rules(spec).items() if c in names and r.silver != "keep"}
    if not rules:
        return inner, list(names)
    return _rewrite(inner, {c: (r.silver, r.kind) for c, r in rules.items()}), [
        n for n in names if not (n in rules and rules[n].silver == "drop")
    ]


def _rewrite(inner: str, actions: dict[str, tuple[str, str]]) -> str:
    """SELECT * EXCLUDE (dropped) REPLACE (hash/mask AS col) FROM (inner)."""
    dropped = [q(c) for c, (a, _) in actions.items() if a == "drop"]
    replaced = []
    for c, (action, kind) in actions.items():
        if action == "hash":
            replaced.append(f"{HASH_MACRO}({q(c)}) AS {q(c)}")
        elif action == "mask":
            replaced.append(f"{mask_sql(kind, q(c))} AS {q(c)}")
    select = "*"
    if dropped:
        select += f" EXCLUDE ({', '.join(dropped)})"
    if replaced:
        select += f" REPLACE ({', '.join(replaced)})"
    return f"SELECT {select} FROM (\n{inner}\n)"


def install(con, spec: TableSpec) -> None:
    """What the spec's protection needs on a DuckDB connection (the hash macro, when a column is hashed)."""
    if needs_key(silver_rules(spec)):
        install_hash(con, key_bytes(f"silver.pii of {spec.table} hashes a column"))


# ---- gold ------------------------------------------------------------------------------------------------


def gold_actions(rules: dict[str, Pii], allowed: list[str]) -> dict[str, tuple[str, str]]:
    """column → (what gold's view does: drop | hash | mask, kind) for a silver table read by a gold query;
    allowed columns and columns silver already stores as gold wants them are left out."""
    out: dict[str, tuple[str, str]] = {}
    for c, r in rules.items():
        if c in allowed or r.silver == "drop" or r.silver == r.gold:
            continue
        out[c] = (r.gold, r.kind)
    return out


def hidden_columns(rules: dict[str, Pii], allowed: list[str]) -> list[str]:
    """The tagged columns a gold query cannot read (pii.gold: drop, not allowed)."""
    return [c for c, r in rules.items() if r.gold == "drop" and r.silver != "drop" and c not in allowed]


def gold_view(project: Project, relation: str, con) -> Callable[[str, str, str], str]:
    """For lh360.engines.local.duck.LakeCatalog.attach: (layer, name, scan SQL) → the SQL gold `relation`
    reads that table through (tagged silver columns as their `gold` rule says)."""
    owner, gold = _gold_of(project, relation)

    def wrap(layer: str, name: str, sql: str) -> str:
        spec = project.specs.get(name)
        if layer != "silver" or spec is None:
            return sql
        actions = gold_actions(silver_rules(spec), gold.allow_pii)
        if not actions:
            return sql
        present = {r[0] for r in con.execute(f"DESCRIBE {sql}").fetchall()}
        actions = {c: a for c, a in actions.items() if c in present}
        if any(a == "hash" for a, _ in actions.values()):
            install_hash(con, key_bytes(f"{relation} reads silver.{name} with hashed columns (pii.gold: hash)"))
        return _rewrite(sql, actions) if actions else sql

    return wrap


def _gold_of(project: Project, relation: str):
    name = relation.split(".", 1)[1]
    for spec in project.specs.values():
        if name in spec.gold:
            return spec, spec.gold[name]
    raise ConfigError(f"no spec defines {relation}")


def databricks_gold_views(spec: TableSpec, gold_name: str, catalog: str) -> dict[str, dict[str, Any]]:
    """For the Databricks job: {temp view: {table, allow}} through which gold `gold_name` reads its spec's
    silver when a tagged column must be hashed, masked or hidden (lh360/spark/transforms.py gold_view); {}
    when gold may read silver as it is."""

    gold = spec.gold[gold_name]
    actions = gold_actions(silver_rules(spec), gold.allow_pii)
    if not actions or not _reads_any(gold.sql, set(actions)):
        return {}
    table = ".".join(quote(p, "databricks") for p in (catalog, "silver", spec.table))
    return {f"lh360_pii_{gold_name}_{spec.table}": {"table": table, "allow": list(gold.allow_pii)}}


def _reads_any(sql: str, columns: set[str]) -> bool:
    """Whether a query may read one of `columns`: names one, or selects `*` (conservative)."""
    from sqlglot import exp

    try:
        tree = parse_query(sql)
    except SQLError:
        return True
    named = any(c.name in columns for c in tree.find_all(exp.Column) if not isinstance(c.this, exp.Star))
    # `SELECT *` or `SELECT t.*` reads every column; `count(*)` reads none
    star = any(isinstance(s.parent, (exp.Select, exp.Column)) for s in tree.find_all(exp.Star))
    return named or star


def foreign_pii(project: Project, relation: str) -> list[str]:
    """The silver tables of other specs with tagged columns that gold `relation` reads (the Databricks job
    knows its own spec's silver.pii only)."""

    owner, gold = _gold_of(project, relation)
    try:
        refs = table_refs(parse_query(gold.sql))
    except SQLError:
        return []
    return sorted(
        {
            f"silver.{t}"
            for layer, t in refs
            if layer == "silver"
            and t != owner.table
            and t in project.specs
            and _reads_any(gold.sql, set(gold_actions(silver_rules(project.specs[t]), gold.allow_pii)))
        }
    )


def gold_problems(project: Project) -> list[ConfigError]:
    """`lint`: every gold query that reads a PII column hidden from gold (pii.gold: drop) without
    allowing it, and every `allow_pii` entry that names no PII column of the tables the query reads."""
    from sqlglot import exp

    errors = []
    for spec in project.specs.values():
        for name, gold in spec.gold.items():
            field = f"gold.{name}"
            try:
                tree = parse_query(gold.sql)
            except SQLError:
                continue  # lint reports the parse error itself
            reads = {t for layer, t in table_refs(tree) if layer == "silver" and t in project.specs}
            tagged: dict[str, tuple[str, Pii]] = {}
            for table in sorted(reads):
                for c, r in silver_rules(project.specs[table]).items():
                    tagged.setdefault(c, (table, r))
            hidden = {
                c: tagged[c]
                for table in reads
                for c in hidden_columns(silver_rules(project.specs[table]), gold.allow_pii)
            }
            used = sorted({col.name for col in tree.find_all(exp.Column) if col.name in hidden})
            for c in used:
                table, rule = hidden[c]
                errors.append(
                    _located(
                        spec,
                        [*field.split("."), "sql"],
                        f"reads {c} of silver.{table}, personal data ({rule.kind}) that gold may not hold "
                        f"(pii.gold: drop): leave it out, set pii.{c}.gold to hash or mask, or allow it here "
                        f"explicitly with allow_pii: [{c}]",
                    )
                )
            for i, c in enumerate(gold.allow_pii):
                if c not in tagged:
                    errors.append(
                        _located(
                            spec,
                            ["gold", name, "allow_pii", i],
                            f"{c} is not a PII column (silver.pii) of the silver tables this query reads",
                        )
                    )
    return errors


def check_gold(project: Project, relation: str) -> None:
    """Refuse (ConfigError) to compute a gold relation whose query reads a PII column hidden from gold."""
    name = relation.split(".", 1)[1]
    for problem in gold_problems(project):
        if problem.field and problem.field.startswith(f"gold.{name}."):
            raise problem


def _located(spec: TableSpec, path: list, reason: str) -> ConfigError:
    from lh360.yamlio import dotted  # yaml: only a config error needs it, redact() must stay light

    line = spec.source_map.line(path) if spec.source_map is not None else None
    return ConfigError(reason, file=str(spec.file) if spec.file else None, line=line, field=dotted(path))


# ---- samples -----------------------------------------------------------------------------------------


def source_columns(expression: str) -> list[str]:
    """The top-level bronze columns a silver column expression reads (`endereco.cidade` reads endereco)."""
    from sqlglot import exp

    try:
        tree = parse_expression(expression)
    except SQLError:
        return []
    out = []
    for col in tree.find_all(exp.Column):
        parts = [p.name for p in col.parts]
        if parts and parts[0] not in out:
            out.append(parts[0])
    return out


def recorded_rules(spec: TableSpec) -> list[str]:
    """The expectations a quarantine replay cannot judge again: they read a column silver protects (hash,
    mask or drop), whose raw value quarantine does not hold either. A replay keeps the verdict refine
    recorded for them in the row's `_failed_rules`."""
    protected = {c for c, r in silver_rules(spec).items() if r.silver != "keep"}
    if spec.silver is None or not protected:
        return []
    return [e.name for e in spec.silver.expectations if protected & set(source_columns(e.rule))]


def tagged_columns(spec: TableSpec, relation: str) -> dict[str, str]:
    """column → kind, for the columns of `relation` (bronze, silver, quarantine or gold) that may hold a
    tagged value as it was: silver's kept columns, the bronze columns they come from, gold's allowed ones."""
    rules = silver_rules(spec)
    if not rules:
        return {}
    layer = relation.split(".", 1)[0]
    if layer in ("silver", "quarantine"):
        return {c: r.kind for c, r in rules.items() if r.silver == "keep"}
    if layer == "bronze":
        assert spec.silver is not None
        out: dict[str, str] = {}
        for c, r in rules.items():
            expression = spec.silver.columns.get(c)
            for source in source_columns(expression) if expression else [c]:
                out.setdefault(source, r.kind)
        return out
    gold = spec.gold.get(relation.split(".", 1)[1])
    return {c: rules[c].kind if c in rules else "other" for c in (gold.allow_pii if gold else [])}


def masker(spec: TableSpec, relation: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function masking one sample row of `relation`: tagged columns to their kind's shape (a struct or
    list whole), and anything in any text value that looks like personal data (redact)."""
    kinds = tagged_columns(spec, relation)

    def one(name: str, value: Any) -> Any:
        if value is None:
            return None
        if name in kinds:
            return "***" if isinstance(value, (dict, list)) else mask_value(kinds[name], value)
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, dict):
            return {k: one(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [one(name, v) for v in value]
        return value

    return lambda row: {k: one(k, v) for k, v in row.items()}
