"""Table specs (`configs/tables/<table>.yaml`): the models, and loading with file:line:field errors."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from lh360.durations import parse_duration
from lh360.sql import SQLError, guard_text
from lh360.types import parse_type

IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
Identifier = Annotated[str, Field(pattern=IDENT)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _no_variables(text: str) -> str:
    """Spec SQL is never expanded from the environment, and Spark itself would substitute `${env:NAME}`
    (and `${spark.conf}`) from the job's environment: a `${` in spec SQL is refused, not kept."""
    if "${" in text:
        raise ValueError(
            "${…} is not allowed in spec SQL: specs are not expanded from the environment, and Spark would "
            "substitute ${env:…} from the job's; write the value itself"
        )
    return text


def _guarded_expression(text: str) -> str:
    """Silver columns and expectation rules reach the Databricks job as text: refuse, when the spec loads,
    anything that reads outside the lake (lh360.sql.guard; sqlglot is imported only for text that may)."""

    _no_variables(text)
    try:
        guard_text(text)
    except SQLError as exc:
        raise ValueError(str(exc)) from None
    return text


# Spark SQL as specs hold it: text for a row (silver columns, expectation rules) or any spec SQL
SparkExpression = Annotated[str, AfterValidator(_guarded_expression)]
SparkSQL = Annotated[str, AfterValidator(_no_variables)]
EVOLUTION_MODES = ("addNewColumns", "rescue", "failOnNewColumns", "none")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# why lh360 itself quarantines a row, besides the spec's rules: a malformed line, a NULL key
QUARANTINE_REASONS = ("corrupt_record", "null_key")


class Source(Strict):
    system: str | None = None
    object: str | None = None
    format: Literal["json"] = "json"
    path: str

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if v.startswith("/") or "://" in v or ".." in v.split("/"):
            raise ValueError("must be a path under the target's landing URI, like clientes/")
        return v.strip("/") + "/"


class LandingSLA(Strict):
    max_age: Duration | None = None
    min_files: int = Field(default=1, ge=0)
    # a local or mounted landing file is taken once unchanged this long (S3 objects are atomic: not applied)
    settle: Duration = timedelta(seconds=60)
    # skip: symlinks are never followed (reported); inside: file symlinks resolving inside the landing zone are
    symlinks: Literal["skip", "inside"] = "skip"

    @field_validator("settle")
    @classmethod
    def _not_negative(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 0:
            raise ValueError("settle must not be negative")
        return v


class Bronze(Strict):
    schema_evolution: Literal["addNewColumns", "rescue", "failOnNewColumns", "none"] = "addNewColumns"
    schema_hints: dict[Identifier, str] = {}
    max_files_per_batch: int = Field(default=1000, ge=1)

    @field_validator("schema_hints")
    @classmethod
    def _types(cls, hints: dict[str, str]) -> dict[str, str]:
        for column, type_text in hints.items():
            try:
                parse_type(type_text)
            except ValueError as exc:
                raise ValueError(f"{column}: {exc}") from None
        return hints


class Expectation(Strict):
    name: Identifier
    rule: SparkExpression
    action: Literal["warn", "drop", "quarantine", "fail"] = "warn"


PII_KINDS = ("cpf", "cnpj", "email", "phone", "name", "address", "birthdate", "other")


class Pii(Strict):
    """LGPD: a silver column that holds personal data, and what silver and gold may keep of it (lh360.pii):
    keep (the value), hash (keyed HMAC-SHA256, stable: joins and `unique` still work), mask (a documented
    shape, e.g. ***.***.***-12) or drop (not stored). Gold can be no less protective than silver."""

    kind: Literal["cpf", "cnpj", "email", "phone", "name", "address", "birthdate", "other"]
    silver: Literal["keep", "hash", "mask", "drop"] = "keep"
    gold: Literal["hash", "mask", "drop"] = "drop"

    @model_validator(mode="after")
    def _gold_no_weaker(self) -> Pii:
        allowed = {"keep": ("hash", "mask", "drop"), "hash": ("hash", "drop"), "mask": ("mask", "drop")}
        if self.gold not in allowed.get(self.silver, ("drop",)):
            raise ValueError(
                f"silver: {self.silver} with gold: {self.gold}: gold can only {' or '.join(allowed.get(self.silver, ('drop',)))} "
                "what silver stores this way"
            )
        return self


class Silver(Strict):
    # columns first: the validators of keys, sequence_by and partition_by check names against it
    columns: dict[Identifier, SparkExpression] = {}
    keys: list[Identifier] = Field(min_length=1)
    sequence_by: Identifier
    scd: Literal[1, 2] = 1
    expectations: list[Expectation] = []
    partition_by: list[Identifier] = []
    pii: dict[Identifier, Pii] = {}  # silver column → its personal data tag (LGPD)

    @field_validator("keys", "sequence_by", "partition_by")
    @classmethod
    def _in_columns(cls, value: Any, info: ValidationInfo) -> Any:
        columns = info.data.get("columns")
        names = value if isinstance(value, list) else [value]
        missing = [n for n in names if columns and n not in columns]
        if missing:
            raise ValueError(f"names {', '.join(missing)}, which is not in silver.columns")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Silver:
        names = [e.name for e in self.expectations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate expectation name {', '.join(dupes)}")
        reserved = sorted(set(names) & set(QUARANTINE_REASONS))
        if reserved:
            raise ValueError(f"expectation name {', '.join(reserved)} is lh360's own quarantine reason: rename it")
        if self.scd == 2 and {"valid_from", "valid_to", "is_current"} & set(self.columns):
            raise ValueError("scd: 2 adds valid_from, valid_to and is_current itself; rename those columns")
        return self

    @field_validator("pii")
    @classmethod
    def _pii_fits(cls, pii: dict[str, Pii], info: ValidationInfo) -> dict[str, Pii]:
        """pii names silver columns; a key may be hashed (stable), never masked or dropped; the sequence and
        partition columns stay as they are (ordering, folders)."""
        columns = info.data.get("columns")
        unknown = [c for c in pii if columns and c not in columns]
        if unknown:
            raise ValueError(f"names {', '.join(unknown)}, which is not in silver.columns")
        for name in info.data.get("keys") or []:
            if name in pii and pii[name].silver in ("mask", "drop"):
                raise ValueError(f"{name}: a key column can be kept or hashed in silver, not {pii[name].silver}")
        for name in [info.data.get("sequence_by"), *(info.data.get("partition_by") or [])]:
            if name in pii and pii[name].silver != "keep":
                raise ValueError(f"{name}: the sequence and partition columns are kept as they are in silver")
        return pii

    @property
    def stored_columns(self) -> list[str]:
        """The columns silver and quarantine store: `columns` but those `pii` drops."""
        return [n for n in self.columns if not (n in self.pii and self.pii[n].silver == "drop")]


# ---- maintenance: when compaction, checkpoints, log cleanup and VACUUM are due -------------------------

SHORTEST_RETENTION = timedelta(days=7)  # as Delta: a shorter VACUUM retention needs an explicit allowance
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _every(value: Any) -> Any:
    """`every`: a duration, or `off` (never)."""
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return "off"
    return parse_duration(value)


def parse_size(value: Any) -> int:
    """Bytes from 134217728, 128MB, 128MiB, 1g (binary units: a MB is 1024² bytes, as delta-rs counts)."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 128MB")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a size (write e.g. 128MB, 1GB)")
        n = int(float(m.group(1)) * _SIZE_UNITS[m.group(2)[:1].lower()])
    if n < 1024:
        raise ValueError("a target size under 1KB makes no sense")
    return n


Every = Annotated[timedelta | Literal["off"], BeforeValidator(_every)]
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1024},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[kmgtKMGT]?i?[bB]?\s*$"},
            ],
            "description": "a size in bytes, or like 128MB, 1GB",
        }
    ),
]


class CompactPolicy(Strict):
    every: Every | None = None  # bin-pack small files toward target_size
    target_size: Size | None = None


class CheckpointPolicy(Strict):
    every: Every | None = None


class LogCleanupPolicy(Strict):
    every: Every | None = None
    retain: Duration | None = None  # commit files older than this, before the latest checkpoint, are deleted


class VacuumPolicy(Strict):
    every: Every | None = None
    retain: Duration | None = None  # data files no version within this window needs are deleted
    allow_short_retention: bool | None = None  # a retain under 7 days (readers of older versions may fail)

    @model_validator(mode="after")
    def _retention(self) -> VacuumPolicy:
        if self.retain is not None and self.retain < SHORTEST_RETENTION and not self.allow_short_retention:
            raise ValueError(
                "retain is shorter than 7 days: a reader or writer still on an older version may lose its files; "
                "set allow_short_retention: true if no run reads the table while VACUUM runs"
            )
        return self


class Maintenance(Strict):
    """`maintenance:` in a target, and in a spec (overriding the target's field by field): how often each
    task is due for every lake table. Unset fields take the target's value, then lh360's defaults."""

    compact: CompactPolicy = CompactPolicy()
    checkpoint: CheckpointPolicy = CheckpointPolicy()
    log_cleanup: LogCleanupPolicy = LogCleanupPolicy()
    vacuum: VacuumPolicy = VacuumPolicy()


class Gold(Strict):
    sql: SparkSQL
    description: str | None = None
    partition_by: list[Identifier] = []
    # PII columns (silver.pii) this query may read as silver stores them, raw included: an explicit exception
    # to their pii.gold rule (which otherwise hashes, masks or hides them from gold queries)
    allow_pii: list[Identifier] = []


# ---- checks: each entry is a one-key mapping {kind: params} --------------------------------------

Severity = Literal["warn", "error"]


class _Check(Strict):
    severity: Severity = "error"
    name: Identifier | None = None


class RowCount(_Check):
    kind: Literal["row_count"] = "row_count"
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)
    max_change_pct: float | None = Field(None, gt=0)  # against the row count seen by the previous validate


class NotNull(_Check):
    kind: Literal["not_null"] = "not_null"
    columns: list[Identifier] = Field(min_length=1)


class Unique(_Check):
    kind: Literal["unique"] = "unique"
    columns: list[Identifier] = Field(min_length=1)


class AcceptedValues(_Check):
    kind: Literal["accepted_values"] = "accepted_values"
    column: Identifier
    values: list[str | int | float | bool] = Field(min_length=1)


class Freshness(_Check):
    kind: Literal["freshness"] = "freshness"
    column: Identifier
    max_age: Duration


class Expression(_Check):
    kind: Literal["expression"] = "expression"
    name: Identifier
    rule: SparkSQL
    max_failures: int = Field(0, ge=0)


class Reconcile(_Check):
    kind: Literal["reconcile"] = "reconcile"
    name: Identifier
    left: SparkSQL
    right: SparkSQL
    tolerance: float = Field(0, ge=0)


class Relationships(_Check):
    kind: Literal["relationships"] = "relationships"
    column: Identifier
    to: Annotated[str, Field(pattern=r"^(bronze|silver|gold)\.[A-Za-z_][A-Za-z0-9_]*$")]
    field: Identifier


class Range(_Check):
    kind: Literal["range"] = "range"
    column: Identifier
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class NoPii(_Check):
    """Values that look like personal data in columns that should hold none (an untagged leak): a CPF or CNPJ
    with valid check digits, an e-mail address or a Brazilian phone number."""

    kind: Literal["no_pii"] = "no_pii"
    columns: list[Identifier] = Field(min_length=1)
    detect: list[Literal["cpf", "cnpj", "email", "phone"]] = Field(
        default=["cpf", "cnpj", "email", "phone"], min_length=1
    )
    max_failures: int = Field(0, ge=0)


CHECK_KINDS = {
    m.model_fields["kind"].default: m
    for m in (RowCount, NotNull, Unique, AcceptedValues, Freshness, Expression, Reconcile, Relationships, Range, NoPii)
}
_LIST_FORM = {"not_null", "unique", "no_pii"}  # `not_null: [id, cpf]` is short for `not_null: {columns: [id, cpf]}`


def _one_key_check(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"a check is a one-key mapping like `row_count: {{min: 1}}`; kinds: {', '.join(CHECK_KINDS)}")
    ((kind, params),) = value.items()
    if kind not in CHECK_KINDS:
        raise ValueError(f"unknown check {kind!r}; kinds: {', '.join(CHECK_KINDS)}")
    if kind in _LIST_FORM and isinstance(params, (list, str)):
        params = {"columns": [params] if isinstance(params, str) else list(params)}
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError(f"{kind}: expected a mapping of options")
    return {"kind": kind, **params}


Check = Annotated[
    RowCount | NotNull | Unique | AcceptedValues | Freshness | Expression | Reconcile | Relationships | Range | NoPii,
    Field(discriminator="kind"),
    BeforeValidator(_one_key_check),
]

_RELATION = re.compile(r"^(bronze|silver|gold)\.([A-Za-z_][A-Za-z0-9_]*)$")


class TableSpec(Strict):
    table: Identifier
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] = {}
    source: Source
    landing: LandingSLA = LandingSLA()
    bronze: Bronze = Bronze()
    silver: Silver | None = None
    gold: dict[Identifier, Gold] = {}
    checks: dict[str, list[Check]] = {}
    maintenance: Maintenance | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_strings(cls, v: Any) -> Any:
        return {k: str(x) for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("checks")
    @classmethod
    def _relations(cls, checks: dict[str, list]) -> dict[str, list]:
        for relation in checks:
            if not _RELATION.match(relation):
                raise ValueError(f"{relation!r}: checks are keyed by layer.table, like silver.clientes")
        return checks

    @model_validator(mode="after")
    def _gold_needs_silver(self) -> TableSpec:
        if self.gold and self.silver is None:
            raise ValueError("gold tables need a silver section")
        return self

    # where the spec was read from and the lines of its fields, for error messages (not part of the YAML)
    _file: Path | None = None
    _source_map: Any = None  # lh360.yamlio.SourceMap

    @property
    def file(self) -> Path | None:
        return self._file

    @property
    def source_map(self) -> Any:
        """The SourceMap the spec was loaded from (None for a spec built in code): `source_map.line(path)`."""
        return self._source_map

    def relations(self) -> list[str]:
        """The tables this spec owns, as layer.name."""
        out = [f"bronze.{self.table}"]
        if self.silver:
            out.append(f"silver.{self.table}")
        out += [f"gold.{g}" for g in self.gold]
        return out


def spec_hash(spec: TableSpec) -> str:
    """The hash of the silver spec (columns, keys, sequence, SCD, expectations, partitioning): what silver's
    rows depend on besides bronze. Silver records the one it was built with, on every engine, so `plan`,
    `run` and `tables` can say when a full refresh is due."""
    assert spec.silver is not None
    doc = json.dumps(spec.silver.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()
