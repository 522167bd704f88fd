"""`lh360 forget` on the local engine: erase one subject from a table's landing files, bronze, silver and
quarantine (the context then recomputes gold, scrubs the ledgers' samples and purges).

Who the subject is. `--key cpf=VALUE` names silver columns. In bronze a row matches when the column as
silver.columns computes it from the row equals VALUE, or equals what silver would compute from VALUE as a
raw value (a formatted CPF matches the digits silver keeps). Every row of the same entity goes too: the
silver keys of the matched rows (`id`) are looked up again, in bronze, silver and quarantine, so a person
whose CPF was corrected, or whose older versions carried another one, is erased whole. In silver and
quarantine the columns are compared as stored: kept, or hashed (the HMAC of VALUE); a masked or dropped
column is reached through the keys alone.

Order. Everything is found first (reads only), and the journal records the landing files to rewrite and
the subject's fingerprints; then silver, quarantine, the landing files, and bronze last: bronze is where
the subject is recognised, so until bronze is erased a rerun finds everything again, and afterwards the
journal still names the landing files. Each table is rewritten in one commit (lh360.engines.local.rewrite:
only the files holding the subject, found with partition values and statistics first).

Landing files. Each file that gave a matching bronze row (its `_source_file`), each file not ingested yet,
and each file of the journal is parsed as ingest parses it, and rewritten under the same name without the
subject's lines (a JSON array without its elements; gzip stays gzip; a local file keeps its mtime). The new
size and mtime are recorded as lh360's own rewrite (lh360.engines.local.ingest_state): ingest neither takes
the file again nor reports it as rewritten by its producer. On a versioned S3 bucket every older version of
the file is deleted.

Malformed lines. A line ingest could not parse has no columns to compare: bronze keeps its raw text (in
`_rescued_data`), quarantine too (`_corrupt_record`), and the landing file still holds it. Such a line is the
subject's when its raw text holds one of the subject's values as a whole token (digits may carry the usual
separators: 009.946.509-49 for 00994650949). Only distinctive values are searched for (8 digits or more,
or 5 characters or more that are not all digits): an id 7 is a token of too many other lines.
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lh360 import pii
from lh360.config import ResolvedTarget
from lh360.delta import open_table
from lh360.engines.base import ForgetResult
from lh360.engines.local import ingest_state as state_mod
from lh360.engines.local import lines as lines_mod
from lh360.engines.local import rewrite, transpile
from lh360.engines.local.batch_query import batch_sql
from lh360.engines.local.duck import connect
from lh360.engines.local.ingest import data_schema
from lh360.engines.local.ingest_state import ingest_state
from lh360.engines.local.landing_files import _array_elements, prepare
from lh360.engines.local.rewrite import Prune, TableFiles, carried, commit_metadata
from lh360.erasure import Journal, Subject, fingerprint
from lh360.errors import ConfigError, UsageError
from lh360.layout import Lake, landing_prefix
from lh360.spec import TableSpec
from lh360.sql import SQLError, parse_expression
from lh360.sql import quote_ident as q
from lh360.sql import quote_literal as lit
from lh360.storage import FileInfo, delete_noncurrent, is_s3, s3_client, split_s3, store_for

# commit metadata read back from a table's newest commits (lh360.engines.local.refine / ingest_state)
SILVER_CARRIED = ("lh360.bronze_version", "lh360.bronze_batch", "lh360.bronze_id", "lh360.spec_hash")
BRONZE_CARRIED = ("lh360.batch_id", "lh360.nonce")
QUARANTINE_CARRIED = ("lh360.run", "lh360.bronze_version", "lh360.full_refresh")
CARRIED = {"bronze": BRONZE_CARRIED, "silver": SILVER_CARRIED, "quarantine": QUARANTINE_CARRIED}


@dataclass
class Predicates:
    """The DuckDB SQL that recognises the subject in each layer, and how files can be pruned."""

    spec: TableSpec
    subject: Subject
    key: bytes | None
    bronze_exprs: dict[str, str] = field(default_factory=dict)  # silver column → DuckDB SQL over a bronze row
    values: dict[str, list[str]] = field(default_factory=dict)  # subject column → the values it may hold

    @property
    def silver_keys(self) -> list[str]:
        return list(self.spec.silver.keys) if self.spec.silver is not None else []

    def bronze_expr(self, column: str) -> str:
        return self.bronze_exprs.get(column, q(column))

    def text(self, sql: str) -> str:
        return f"CAST(({sql}) AS VARCHAR)"

    # bronze (and landing lines parsed like bronze): silver's value computed from the row

    def bronze(self, entities: set[tuple] | None = None) -> str:
        own = " AND ".join(f"{self.text(self.bronze_expr(c))} IN ({_list(v)})" for c, v in self.values.items())
        where = _or(own, self._keys_in([self.text(self.bronze_expr(k)) for k in self.silver_keys], entities))
        assert where is not None  # a subject names at least one value
        return where

    # silver and quarantine: the columns as stored

    def stored(self, column: str, values: Iterable[str]) -> str | None:
        action = self._action(column)
        if action == "keep":
            return f"{self.text(q(column))} IN ({_list(values)})"
        if action == "hash":
            return f"{q(column)} IN ({_list(self.protect(column, v) for v in values)})"
        return None  # masked or dropped: not recognisable by its value

    def silver(self, entities: set[tuple] | None = None) -> str | None:
        parts = [self.stored(c, v) for c, v in self.values.items()]
        own = None if any(p is None for p in parts) else " AND ".join(p for p in parts if p)
        return _or(own, self._keys_in([self.text(q(k)) for k in self.silver_keys], entities))

    def protect(self, column: str, value: str) -> str:
        """`value` (as silver computes it) as silver stores it."""
        return pii.hmac_hex(value, self.key) if self._action(column) == "hash" else value

    def protect_entity(self, entity: tuple) -> tuple:
        return tuple(None if v is None else self.protect(k, v) for k, v in zip(self.silver_keys, entity, strict=True))

    def _action(self, column: str) -> str:
        rule = pii.silver_rules(self.spec).get(column)
        return rule.silver if rule is not None else "keep"

    def _keys_in(self, exprs: list[str], entities: set[tuple] | None) -> str | None:
        rows = [e for e in entities or () if all(v is not None for v in e)]
        if not rows or not exprs:
            return None
        if len(exprs) == 1:
            return f"{exprs[0]} IN ({_list(e[0] for e in rows)})"
        return (
            "("
            + " OR ".join(
                "(" + " AND ".join(f"{x} = {lit(v)}" for x, v in zip(exprs, e, strict=True)) + ")" for e in rows
            )
            + ")"
        )

    # malformed lines: the subject's values searched for in their raw text

    def raw_text(self, column_sql: str) -> str | None:
        """`column_sql` (a malformed line's raw text) holds one of the subject's distinctive values."""
        patterns = [raw_pattern(v) for vs in self.values.values() for v in vs if distinctive(v)]
        if not patterns:
            return None
        found = " OR ".join(f"regexp_matches({column_sql}, {lit(p)})" for p in dict.fromkeys(patterns))
        return f"({column_sql} IS NOT NULL AND ({found}))"

    # pruning: files whose statistics or partition values exclude the subject are not read

    def stored_prunes(self, entities: set[tuple] | None) -> list[Prune] | None:
        """Files of silver or quarantine that may hold the subject (None: every file)."""
        prunes = []
        direct = [(c, self._action(c)) for c in self.values if self._action(c) in ("keep", "hash")]
        if len(direct) == len(self.values) and direct:
            c = direct[0][0]
            prunes.append(Prune(c, [self.protect(c, v) for v in self.values[c]]))
        elif self.values:
            return None
        if entities and len(self.silver_keys) >= 1:
            k = self.silver_keys[0]
            prunes.append(Prune(k, sorted({e[0] for e in entities if e[0] is not None})))
        return prunes

    def bronze_prunes(self, entities: set[tuple] | None, plain: dict[str, str]) -> list[Prune] | None:
        """Bronze files that may hold the subject: only when every way to match reads a plain column."""
        prunes = []
        for c, v in self.values.items():
            if c not in plain:
                return None
            prunes.append(Prune(plain[c], list(v)))
            break
        if entities:
            k = self.silver_keys[0]
            if k not in plain:
                return None
            prunes.append(Prune(plain[k], sorted({e[0] for e in entities if e[0] is not None})))
        return prunes


def distinctive(value: str) -> bool:
    """A value searched for in raw text: 8 digits or more, or 5 characters or more not all digits."""
    text = str(value).strip()
    return len(text) >= 8 if text.isdigit() else len(text) >= 5


def raw_pattern(value: str) -> str:
    """A regular expression (RE2) for `value` as a whole token of raw text; digits may be separated by
    `.`, `-`, `/` or a space, as documents are written."""
    text = str(value).strip()
    if text.isdigit():
        body = r"[.\-/ ]?".join(text)
    else:
        body = re.escape(text)
    return rf"(^|[^0-9A-Za-z]){body}([^0-9A-Za-z]|$)"


def _with_raw(where: str | None, prunes: list[Prune] | None, raw: str | None, column: str):
    """`where` and `prunes` widened to the malformed lines whose raw text (`column`) names the subject."""
    if raw is None:
        return where, prunes
    return _or(where, raw), None if prunes is None else [*prunes, Prune(column, [], present=True)]


def _list(values: Iterable[Any]) -> str:
    return ", ".join(lit(v) for v in values)


def _or(a: str | None, b: str | None) -> str | None:
    parts = [p for p in (a, b) if p]
    return " OR ".join(f"({p})" for p in parts) if parts else None


def predicates(con, spec: TableSpec, subject: Subject, key: bytes | None, bronze_types: dict[str, str]) -> Predicates:
    """The subject's predicates; each key value also as silver would compute it from a raw value."""

    p = Predicates(spec, subject, key)
    columns = spec.silver.columns if spec.silver is not None else {}
    for name in {*subject.columns, *p.silver_keys}:
        if name in columns:
            try:
                p.bronze_exprs[name] = transpile.expression(columns[name])
            except SQLError as exc:
                raise ConfigError(
                    str(exc), file=str(spec.file) if spec.file else None, field=f"silver.columns.{name}"
                ) from None
        elif bronze_types and name not in bronze_types:
            raise UsageError(f"--key {name}: {spec.table} has no such column")
    for column, value in subject.keys.items():
        values = [value]
        raw = _computed_from_raw(con, spec, column, value, bronze_types, p.bronze_exprs.get(column))
        if raw is not None and raw not in values:
            values.append(raw)
        p.values[column] = values
    return p


def _computed_from_raw(
    con, spec, column: str, value: str, bronze_types: dict[str, str], expr: str | None
) -> str | None:
    """What silver computes from `value` landed in the one bronze field the column is computed from
    (`regexp_replace(cpf, '[^0-9]', '')` of 009.946.509-49 is 00994650949), or None."""
    if expr is None or spec.silver is None:
        return None
    sources = pii.source_columns(spec.silver.columns[column])
    if (
        len(sources) != 1
        or bronze_types.get(sources[0], "").upper().startswith(("STRUCT", "MAP"))
        or "[]" in bronze_types.get(sources[0], "[]")
    ):
        return None
    source = sources[0]
    try:
        row = con.execute(
            f"SELECT CAST(({expr}) AS VARCHAR) FROM (SELECT TRY_CAST(? AS {bronze_types[source]}) AS {q(source)})",
            [value],
        ).fetchall()
    except Exception:
        return None
    return row[0][0] if row and row[0][0] is not None else None


def plain_columns(spec: TableSpec, names: list[str]) -> dict[str, str]:
    """silver column → the bronze column it is (or casts) to, for pruning bronze by statistics."""
    from sqlglot import exp

    out = {}
    for name in names:
        text = spec.silver.columns.get(name) if spec.silver is not None and spec.silver.columns else name
        if text is None:
            continue
        try:
            tree = parse_expression(text)
        except SQLError:
            continue
        while isinstance(tree, (exp.Cast, exp.TryCast, exp.Paren)):
            tree = tree.this
        if isinstance(tree, exp.Column) and not tree.table:
            out[name] = tree.name
    return out


# ---- the step ------------------------------------------------------------------------------------------


def forget(target: ResolvedTarget, spec: TableSpec, subject: Subject, journal: Journal) -> ForgetResult:
    """See the module docstring."""

    started = time.monotonic()
    result = ForgetResult(table=spec.table, engine="local", request=subject.request, key_columns=subject.columns)
    result.resumed = journal.resumed
    lake, aws, t = Lake(target.lake), target.settings.aws, spec.table
    key = pii.key_bytes("lh360 forget") if pii.needs_key(pii.silver_rules(spec)) else None
    con = connect()
    try:
        if key is not None:
            pii.install_hash(con, key)
        with tempfile.TemporaryDirectory(prefix="lh360-forget-") as tmp_dir:
            tmp = Path(tmp_dir)
            bronze = TableFiles(con, lake.table("bronze", t), aws, tmp)
            silver = TableFiles(con, lake.table("silver", t), aws, tmp)
            quarantine = TableFiles(con, lake.table("quarantine", t), aws, tmp)
            p = predicates(con, spec, subject, key, bronze.types if bronze.exists else {})
            found = _find(target, spec, p, bronze, silver, quarantine, journal, tmp, con)
            journal.add_fingerprints(found.fingerprints)
            state = ingest_state(target, spec, bronze.dt) if bronze.exists else None
            sources = _relative(target, spec, found.landing, state.files if state else set())
            journal.data["landing_files"] = sorted({*journal.data.get("landing_files", []), *sources})
            if bronze.exists and bronze.append_only:
                journal.data["bronze_append_only"] = True
            journal.save()  # before the first change: a rerun knows what this one set out to do

            meta = commit_metadata("forget", subject.request)
            if silver.exists and found.silver_where:
                silver_meta = {**carried(silver.dt, SILVER_CARRIED), **meta}
                done = silver.delete(
                    found.silver_where, found.silver_prunes, silver_meta, what=f"silver.{t}", hits=found.silver_hits
                )
                journal.count(f"silver.{t}", done.rows, done.files)
            if quarantine.exists and found.quarantine_where:
                done = quarantine.delete(
                    found.quarantine_where,
                    found.quarantine_prunes,
                    meta,
                    what=f"quarantine.{t}",
                    hits=found.quarantine_hits,
                )
                journal.count(f"quarantine.{t}", done.rows, done.files)
            lines, files, versions = landing(target, spec, p, found.entities, journal, bronze, tmp, con)
            journal.count(f"landing.{t}", lines, files)
            result.noncurrent_versions += versions
            if bronze.exists:
                if found.bronze_where:
                    bronze_meta = {**carried(bronze.dt, BRONZE_CARRIED), **meta}
                    done = bronze.delete(
                        found.bronze_where, found.bronze_prunes, bronze_meta, what=f"bronze.{t}", hits=found.bronze_hits
                    )
                    journal.count(f"bronze.{t}", done.rows, done.files)
                if journal.data.get("bronze_append_only"):  # an interrupted run may have left it off
                    rewrite.set_append_only(bronze.reopen(), {**carried(bronze.reopen(), BRONZE_CARRIED), **meta})
    finally:
        con.close()
    for relation in (f"landing.{t}", f"bronze.{t}", f"silver.{t}", f"quarantine.{t}"):
        c = journal.counted(relation)
        result.layers[relation] = {"rows": c["rows"], "files": c["files"]}
    result.seconds = round(time.monotonic() - started, 3)
    return result


@dataclass
class Found:
    entities: set[tuple] = field(default_factory=set)  # silver keys of the subject, as silver computes them
    bronze_where: str | None = None
    bronze_prunes: list[Prune] | None = None
    bronze_hits: dict[str, int] = field(default_factory=dict)
    silver_where: str | None = None
    silver_prunes: list[Prune] | None = None
    silver_hits: dict[str, int] = field(default_factory=dict)
    quarantine_where: str | None = None
    quarantine_prunes: list[Prune] | None = None
    quarantine_hits: dict[str, int] = field(default_factory=dict)
    landing: set[str] = field(default_factory=set)  # `_source_file` of the matching bronze rows
    fingerprints: dict[str, set[str]] = field(default_factory=dict)  # column → HMACs of the subject's values


def _find(target, spec, p: Predicates, bronze, silver, quarantine, journal, tmp, con) -> Found:
    """Everything the subject left, found before anything changes."""
    found = Found()
    fp_bronze = _fingerprint_columns(spec, bronze, source=True)
    fp_stored = _fingerprint_columns(spec, silver, source=False)
    keys = [p.text(p.bronze_expr(k)) for k in p.silver_keys]
    plain = plain_columns(spec, [*p.values, *p.silver_keys]) if bronze.exists else {}
    plain = {c: b for c, b in plain.items() if b in bronze.types} if bronze.exists else {}
    if bronze.exists:
        # a malformed line keeps its raw text in _rescued_data (ingest's _corrupt_record key)
        raw = p.raw_text(p.text(q("_rescued_data"))) if "_rescued_data" in bronze.types else None
        first, first_prunes = _with_raw(p.bronze(), p.bronze_prunes(None, plain), raw, "_rescued_data")
        rows = bronze.scan(first, keys, first_prunes) if first else []
        found.entities = {tuple(r[1:]) for r in rows if any(v is not None for v in r[1:])}
        found.bronze_where, found.bronze_prunes = _with_raw(
            p.bronze(found.entities), p.bronze_prunes(found.entities, plain), raw, "_rescued_data"
        )
        select = ["_source_file" if "_source_file" in bronze.types else "NULL", *[p.text(q(c)) for c in fp_bronze]]
        rows = bronze.scan(found.bronze_where, select, found.bronze_prunes) if found.bronze_where else []
        for rel, source, *values in rows:
            found.bronze_hits[rel] = found.bronze_hits.get(rel, 0) + 1
            if source:
                found.landing.add(source)
            _remember(found.fingerprints, fp_bronze, values)
    # silver, then quarantine: as stored; the entities silver adds (a person whose bronze rows are gone)
    # are looked up in quarantine too
    stored_entities = {p.protect_entity(e) for e in found.entities}
    if silver.exists:
        found.silver_where, found.silver_prunes = p.silver(stored_entities), p.stored_prunes(stored_entities)
        stored_entities |= _scan_stored(
            p, silver, found.silver_where, found.silver_prunes, found.silver_hits, fp_stored, found
        )
    if quarantine.exists:
        raw = p.raw_text(q("_corrupt_record")) if "_corrupt_record" in quarantine.types else None
        found.quarantine_where, found.quarantine_prunes = _with_raw(
            p.silver(stored_entities), p.stored_prunes(stored_entities), raw, "_corrupt_record"
        )
        _scan_stored(
            p,
            quarantine,
            found.quarantine_where,
            found.quarantine_prunes,
            found.quarantine_hits,
            fp_stored,
            found,
        )
    for column, values in p.values.items():
        found.fingerprints.setdefault(column, set()).update(fingerprint(v) for v in values)
    return found


def _scan_stored(
    p: Predicates, table: TableFiles, where: str | None, prunes, hits: dict[str, int], fp: list[str], found: Found
) -> set[tuple]:
    """Count the subject's rows of silver or quarantine per file; their entities (keys as stored)."""
    if where is None:
        return set()
    keys = [k for k in p.silver_keys if k in table.types]
    cols = [c for c in fp if c in table.types]
    entities = set()
    for rel, *values in table.scan(where, [p.text(q(k)) for k in keys] + [p.text(q(c)) for c in cols], prunes):
        hits[rel] = hits.get(rel, 0) + 1
        if len(keys) == len(p.silver_keys):
            entities.add(tuple(values[: len(keys)]))
        _remember(found.fingerprints, cols, values[len(keys) :])
    return entities


def _fingerprint_columns(spec: TableSpec, table: TableFiles, *, source: bool) -> list[str]:
    """The scalar columns whose values identify the subject in a check sample: tagged and key columns (as
    stored), or the bronze columns they are computed from."""
    if not table.exists:
        return []
    names = [*pii.silver_rules(spec), *(spec.silver.keys if spec.silver else [])]
    if source:
        names = [
            s
            for n in names
            for s in (pii.source_columns(spec.silver.columns[n]) if spec.silver and n in spec.silver.columns else [n])
        ]
    out = []
    for n in names:
        t = table.types.get(n, "")
        if n not in out and t and not t.upper().startswith(("STRUCT", "MAP")) and not t.endswith("]"):
            out.append(n)
    return out


def _remember(fingerprints: dict[str, set[str]], columns: list[str], values: list[Any]) -> None:
    for c, v in zip(columns, values, strict=False):
        if v is not None and v != "":
            fingerprints.setdefault(c, set()).add(fingerprint(str(v)))


def _relative(target: ResolvedTarget, spec: TableSpec, sources: set[str], ingested: set[str]) -> set[str]:
    """The landing files (paths relative to the table's prefix, their identity in the ingest state) that
    bronze's `_source_file` values name: under today's prefix, or else the ingested file the value ends with
    (a landing zone that moved since the ingest)."""
    base = landing_prefix(target.landing, spec.source.path).rstrip("/") + "/"
    by_name: dict[str, list[str]] = {}
    for rel in ingested:
        by_name.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
    out = set()
    for uri in sources:
        if uri.startswith(base):
            out.add(uri[len(base) :])
            continue
        out.update(rel for rel in by_name.get(uri.replace("\\", "/").rsplit("/", 1)[-1], []) if uri.endswith("/" + rel))
    return out


# ---- landing files ------------------------------------------------------------------------------------------


def landing(
    target, spec, p: Predicates, entities, journal: Journal, bronze: TableFiles, tmp: Path, con, state=None
) -> tuple[int, int, int]:
    """(lines erased, files rewritten, S3 versions deleted) over the landing files that may hold the subject.
    `state`: what the engine has ingested (Engine.ingested; the local engine's by default). Rewrites of
    ingested files are recorded as lh360's own for the local engine's ingest."""

    # a malformed line is parsed as ingest parses it: its raw text lands in _rescued_data
    where = _or(p.bronze(entities), p.raw_text(p.text(q("_rescued_data"))))
    if where is None or not bronze.exists:
        return 0, 0, 0
    local = state is None
    state = state if state is not None else ingest_state(target, spec, bronze.dt)
    links_inside = target.landing if spec.landing.symlinks == "inside" else None
    store = store_for(target.landing, target.settings.aws, links_inside=links_inside)
    listed = {f.rel: f for f in store.list(landing_prefix(target.landing, spec.source.path))}
    wanted = set(journal.data.get("landing_files", [])) | {rel for rel in listed if rel not in state.files}
    files = [listed[rel] for rel in sorted(wanted) if rel in listed]
    lines = rewritten = versions = 0
    planned = set(journal.data.get("landing_files", []))
    for info in files:
        drop = _matching_lines(con, bronze, info, where, target, tmp)
        if drop:
            new = _rewrite_file(target, info, drop, links_inside)
            lines += len(drop)
            rewritten += 1
        elif info.rel in planned and state.meta.get(info.rel, (info.size, info.mtime)) != (info.size, info.mtime):
            new = info  # rewritten by an interrupted run of this erasure before it could record it
        else:
            continue
        if local and info.rel in state.files:
            state_mod.record_rewrites(target, spec, {info.rel: (new.size, new.mtime)})
        versions += delete_noncurrent([info.uri], target.settings.aws, keep_latest=True)
    return lines, rewritten, versions


def _matching_lines(con, bronze: TableFiles, info: FileInfo, where: str, target, tmp: Path) -> set[int]:
    """The line numbers (a JSON array: element numbers) of `info` whose record, parsed as ingest parses it
    into bronze's columns, matches `where`."""

    prepared, _problems = prepare([info], target, tmp)
    if not prepared:  # unreadable as a whole (quarantined by ingest): nothing of it is in bronze
        return set()
    schema = data_schema(con, bronze.dt)
    sql = batch_sql(schema, [info], 0, datetime.now(UTC), fast_path=False)
    reader, close = lines_mod.reader([prepared[0].local], [prepared[0].limit])
    cur = con.cursor()
    try:
        cur.register("__lines", reader)
        rows = cur.execute(f"SELECT _line FROM ({sql}) WHERE coalesce(({where}), false)").fetchall()
    finally:
        cur.close()
        close()
    return {int(r[0]) for r in rows}


def _rewrite_file(target, info: FileInfo, drop: set[int], links_inside: str | None) -> FileInfo:
    """`info` without the records numbered `drop`, under the same name; the file as a listing sees it now."""

    store = store_for(target.landing, target.settings.aws, links_inside=links_inside)
    data = store.read_bytes(info.uri)
    zipped = info.rel.lower().endswith(".gz")
    if zipped:
        data = gzip.decompress(data)
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    body = data[len(bom) :]
    elements = None
    if body.lstrip(b" \t\r\n")[:1] == b"[":
        try:
            elements = _array_elements(body.decode("utf-8"))
        except UnicodeDecodeError:
            elements = None
    if elements is not None:
        kept = [e for i, e in enumerate(elements, start=1) if i not in drop]
        tail = "\n" if body.endswith(b"\n") else ""
        out = bom + ("[" + ",\n".join(kept) + "]" + tail).encode("utf-8")
    else:
        parts = body.split(b"\n")
        out = bom + b"\n".join(part for i, part in enumerate(parts, start=1) if i not in drop)
    if zipped:
        out = gzip.compress(out, mtime=0)
    if is_s3(info.uri):
        store.write_bytes(info.uri, out)
        return _s3_info(target, info)
    path = Path(info.uri)
    st = os.stat(path)
    store.write_bytes(str(path), out)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # a rewrite is not new data: the SLA's clock stays
    st = os.stat(path)
    return FileInfo(info.uri, info.rel, st.st_size, st.st_mtime)


def _s3_info(target: ResolvedTarget, info: FileInfo) -> FileInfo:
    """The object as a listing sees it now (its new size and LastModified)."""

    bucket, key = split_s3(info.uri)
    head = s3_client(target.settings.aws).head_object(Bucket=bucket, Key=key)
    return FileInfo(info.uri, info.rel, int(head["ContentLength"]), head["LastModified"].timestamp())


def relations(spec: TableSpec) -> list[str]:
    """The tables an erasure of `spec` rewrites (for purge)."""
    out = [f"bronze.{spec.table}"]
    if spec.silver is not None:
        out += [f"silver.{spec.table}", f"quarantine.{spec.table}"]
    return out


def purge_relation(target: ResolvedTarget, relation: str, request: str = "") -> dict[str, int]:
    """Purge one table (lh360.engines.local.rewrite.purge); its VACUUM commits carry the metadata lh360 reads
    back from a table's newest commit, which the log cleanup leaves as the oldest one there is."""

    uri = lake_uri(target, relation)
    dt = open_table(uri, target.settings.aws)
    if dt is None:
        return {"files": 0, "log_entries": 0, "versions": 0}
    keep = CARRIED.get(relation.split(".", 1)[0], ())
    meta = {**(carried(dt, keep) if keep else {}), **commit_metadata("purge", request)}
    done = rewrite.purge(uri, target.settings.aws, meta)
    return {"files": done.files, "log_entries": done.log_entries, "versions": done.noncurrent_versions}


def lake_uri(target: ResolvedTarget, relation: str) -> str:
    layer, name = relation.split(".", 1)
    if layer == "lh360":
        return Lake(target.lake).ledger(name)
    return Lake(target.lake).table(layer, name)
