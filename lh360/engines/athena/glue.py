"""Glue registration of the lake's Delta tables, so Athena can read them (`lh360 -t prod deploy`).

Athena reads Delta tables natively only through the Glue Data Catalog: an EXTERNAL_TABLE whose parameters
say `table_type=DELTA` and whose location is the table's folder — what Athena's own
`CREATE EXTERNAL TABLE t LOCATION 's3://…' TBLPROPERTIES ('table_type'='DELTA')` creates. lh360 writes that
catalog entry with the Glue API directly (CreateTable / UpdateTable) rather than through an Athena DDL query:

* the same entry, with the schema from the Delta log spelled out as Glue columns and partition keys, as
  Athena's DDL syncs it (Lake Formation, views and column filters need those columns to match the log);
* re-registering after a schema change is one atomic UpdateTable — no window where the table is missing,
  as DROP + CREATE would leave — and no Athena query is billed or waited for;
* it is testable offline against moto's Glue.

A table Athena cannot read — a Delta reader protocol or reader feature it lacks, a column type Glue has no
name for — is `refused` with the reason (deploy exits 2) rather than registered to fail every query later.
Each action shows the equivalent Athena DDL for reference. Which tables: every bronze, silver and gold
table of every spec (in the target's `athena.databases`), and the ledgers `<lake>/_lh360/runs` and
`/checks` as `lh360_runs` and `lh360_checks` in the `ledger` database (default: the gold one). A table whose
Delta log does not exist yet is `deferred` (deploy again after the first promote). A table already
registered is compared by a fingerprint of its columns, partition keys and location (parameter
`lh360.fingerprint`; for entries lh360 did not write, by the columns themselves): same → `ok`, else
re-registered with the changes listed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.delta import open_table
from lh360.deploy import Action
from lh360.layout import Lake
from lh360.storage import aws_client, is_s3, to_delta_uri

LEDGER_TABLES = {"runs": "lh360_runs", "checks": "lh360_checks"}
NAME = "glue"
REFUSED = "refused"  # a table Athena cannot read: not registered, and deploy exits 2

_PRIMITIVES = {
    "long": "bigint",
    "integer": "int",
    "short": "smallint",
    "byte": "tinyint",
    "float": "float",
    "double": "double",
    "boolean": "boolean",
    "string": "string",
    "binary": "binary",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",
}


def glue_client(target: ResolvedTarget):
    return aws_client("glue", target.settings.aws)


class UnknownType(ValueError):
    """A Delta type Glue/Athena has no type for (deploy refuses the table: a config error, exit 2)."""


def hive_type(t: Any) -> str:
    """A Delta schema type (its JSON form) → the Glue/Hive type string; UnknownType if there is none."""
    if isinstance(t, str):
        if t in _PRIMITIVES:
            return _PRIMITIVES[t]
        if t.startswith("decimal"):
            return t.replace(" ", "")
        raise UnknownType(f"Delta type {t!r} has no Glue/Athena type")
    kind = t.get("type")
    if kind == "struct":
        return "struct<" + ",".join(f"{_field_name(f['name'])}:{hive_type(f['type'])}" for f in t["fields"]) + ">"
    if kind == "array":
        return f"array<{hive_type(t['elementType'])}>"
    if kind == "map":
        return f"map<{hive_type(t['keyType'])},{hive_type(t['valueType'])}>"
    raise UnknownType(f"Delta type {json.dumps(t)} has no Glue/Athena type")


def _field_name(name: str) -> str:
    """A struct field name in a Hive type string: as is when it is a plain identifier, else in backticks
    (a backtick doubled), as Athena's DDL quotes names; unescaped, a space, `:`, `,` or
    `<` in a name would change the type's meaning."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return name
    return "`" + name.replace("`", "``") + "`"


# What Athena reads of Delta: reader protocol up to 3, with these reader features
# (https://docs.aws.amazon.com/athena/latest/ug/delta-lake-tables.html: deletion vectors, column mapping and
# timestampNtz are supported). A table needing anything else would be registered and then fail every query.
ATHENA_MAX_READER_VERSION = 3
ATHENA_READER_FEATURES = frozenset({"deletionVectors", "columnMapping", "timestampNtz"})


def unreadable_by_athena(dt: Any) -> str | None:
    """Why Athena cannot read this Delta table (its protocol), or None when it can."""
    protocol = dt.protocol()
    if protocol.min_reader_version > ATHENA_MAX_READER_VERSION:
        return (
            f"its Delta reader version is {protocol.min_reader_version}; Athena reads versions up to "
            f"{ATHENA_MAX_READER_VERSION}"
        )
    extra = sorted(set(protocol.reader_features or []) - ATHENA_READER_FEATURES)
    if extra:
        return (
            f"it needs the Delta reader feature(s) {', '.join(extra)}; Athena reads only "
            f"{', '.join(sorted(ATHENA_READER_FEATURES))}"
        )
    return None


@dataclass(frozen=True)
class Registration:
    relation: str  # silver.clientes, lh360.runs
    uri: str  # the Delta table's folder
    database: str
    table: str
    description: str | None = None


def registrations(project: Project, target: ResolvedTarget) -> list[Registration]:
    settings = target.settings.athena
    assert settings is not None
    dbs: dict[str, str] = {layer: db for layer, db in settings.databases.items()}
    lake = Lake(target.lake)
    out: list[Registration] = []
    for spec in project.select(None):
        for relation in spec.relations():
            layer, name = relation.split(".", 1)
            desc = spec.gold[name].description if layer == "gold" and spec.gold[name].description else spec.description
            out.append(Registration(relation, lake.table(layer, name), dbs[layer], name.lower(), desc))
    ledger_db = dbs.get("ledger") or dbs["gold"]
    out.append(Registration("lh360.runs", lake.runs, ledger_db, LEDGER_TABLES["runs"], "lh360 run ledger"))
    out.append(Registration("lh360.checks", lake.checks, ledger_db, LEDGER_TABLES["checks"], "lh360 check ledger"))
    return out


def table_input(reg: Registration, dt: Any) -> dict[str, Any]:
    """The Glue TableInput for a Delta table: columns and partition keys from its log, table_type=DELTA."""
    schema = json.loads(dt.schema().to_json())
    partitions = list(dt.metadata().partition_columns)
    fields = {f["name"]: hive_type(f["type"]) for f in schema["fields"]}
    columns = [{"Name": n, "Type": t} for n, t in fields.items() if n not in partitions]
    keys = [{"Name": n, "Type": fields[n]} for n in partitions]
    location = to_delta_uri(reg.uri).rstrip("/")
    fp = fingerprint(columns, keys, location)
    params = {
        "EXTERNAL": "TRUE",
        "table_type": "DELTA",
        "classification": "delta",
        "lh360.fingerprint": fp,
        "lh360.relation": reg.relation,
    }
    out: dict[str, Any] = {
        "Name": reg.table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": params,
        "PartitionKeys": keys,
        "StorageDescriptor": {
            "Columns": columns,
            "Location": location,
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
        },
    }
    if reg.description:
        out["Description"] = reg.description[:2048]
    return out


def fingerprint(columns: list[dict], keys: list[dict], location: str) -> str:
    doc = json.dumps({"c": columns, "p": keys, "l": location}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def ddl(reg: Registration) -> str:
    """The equivalent Athena DDL (Athena infers the columns from the Delta log)."""
    location = to_delta_uri(reg.uri).rstrip("/") + "/"
    return (
        f"CREATE EXTERNAL TABLE `{reg.database}`.`{reg.table}` LOCATION '{location}' "
        "TBLPROPERTIES ('table_type'='DELTA')"
    )


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between a registered Glue table and the wanted one, in words."""

    def cols(t: dict[str, Any]) -> dict[str, str]:
        sd = t.get("StorageDescriptor") or {}
        return {c["Name"].lower(): c.get("Type", "") for c in [*sd.get("Columns", []), *t.get("PartitionKeys", [])]}

    out = []
    a, b = cols(old), cols(new)
    out += [f"+{n} {b[n]}" for n in b if n not in a]
    out += [f"-{n}" for n in a if n not in b]
    out += [f"{n}: {a[n]} → {b[n]}" for n in b if n in a and a[n].lower() != b[n].lower()]
    old_keys = [k["Name"].lower() for k in old.get("PartitionKeys", [])]
    new_keys = [k["Name"].lower() for k in new.get("PartitionKeys", [])]
    if old_keys != new_keys:
        out.append(f"partitioned by {new_keys or 'nothing'} (was {old_keys or 'nothing'})")
    old_loc = (old.get("StorageDescriptor") or {}).get("Location", "").rstrip("/")
    if old_loc != new["StorageDescriptor"]["Location"]:
        out.append(f"location {new['StorageDescriptor']['Location']} (was {old_loc or 'none'})")
    params = {k.lower(): str(v).lower() for k, v in (old.get("Parameters") or {}).items()}
    if params.get("table_type") != "delta":
        out.append("table_type=DELTA (was " + (params.get("table_type") or "unset") + ")")
    return out


class GlueDeployer:
    """Creates the Glue databases and registers (or re-registers) the Delta tables; a deploy.Deployer."""

    name = NAME

    def __init__(self, project: Project, target: ResolvedTarget) -> None:
        self.project = project
        self.target = target
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = glue_client(self.target)
        return self._client

    def plan(self) -> list[Action]:
        if not is_s3(self.target.lake):
            return [
                Action(
                    NAME, "register_tables", self.target.lake, "skipped", "the lake is not on S3: Athena cannot read it"
                )
            ]
        regs = registrations(self.project, self.target)
        actions: list[Action] = []
        for db in dict.fromkeys(r.database for r in regs):
            try:
                self.client.get_database(Name=db)
                actions.append(Action(NAME, "create_database", db, "ok", "exists"))
            except self.client.exceptions.EntityNotFoundException:
                actions.append(
                    Action(NAME, "create_database", db, "todo", "new", sql=f"CREATE DATABASE IF NOT EXISTS `{db}`")
                )
        for reg in regs:
            obj = f"{reg.database}.{reg.table}"
            try:
                dt = open_table(reg.uri, self.target.settings.aws)
            except Exception as exc:  # a log delta-rs cannot read (an unknown protocol): Athena could not either
                actions.append(Action(NAME, "register_table", obj, REFUSED, f"its Delta log cannot be read: {exc}"))
                continue
            if dt is None:
                actions.append(
                    Action(
                        NAME,
                        "register_table",
                        obj,
                        "deferred",
                        f"no Delta table at {reg.uri} yet: deploy again after the first run writes it",
                    )
                )
                continue
            why = unreadable_by_athena(dt)
            try:
                wanted = None if why else table_input(reg, dt)
            except UnknownType as exc:
                why = f"{exc} (a column of {reg.uri})"
            if why or wanted is None:
                actions.append(
                    Action(NAME, "register_table", obj, REFUSED, f"Athena cannot read {reg.relation}: {why}")
                )
                continue
            data = {"database": reg.database, "input": wanted}
            try:
                current = self.client.get_table(DatabaseName=reg.database, Name=reg.table)["Table"]
            except self.client.exceptions.EntityNotFoundException:
                actions.append(
                    Action(NAME, "register_table", obj, "todo", f"new ({reg.relation})", sql=ddl(reg), data=data)
                )
                continue
            have = (current.get("Parameters") or {}).get("lh360.fingerprint")
            diff = changes(current, wanted)
            if have == wanted["Parameters"]["lh360.fingerprint"] or (have is None and not diff):
                actions.append(Action(NAME, "register_table", obj, "ok", "registered, schema unchanged"))
                continue
            reason = "schema changed: " + ", ".join(diff) if diff else "registration out of date"
            actions.append(
                Action(NAME, "reregister_table", obj, "todo", reason, sql=ddl(reg), data={**data, "update": True})
            )
        return actions

    def apply(self, action: Action) -> None:
        if action.kind == "create_database":
            try:
                self.client.create_database(DatabaseInput={"Name": action.object})
            except self.client.exceptions.AlreadyExistsException:
                pass  # another deploy created it meanwhile: as wanted
            return
        database, wanted = action.data["database"], action.data["input"]
        if action.data.get("update"):
            self.client.update_table(DatabaseName=database, TableInput=wanted)
            return
        try:
            self.client.create_table(DatabaseName=database, TableInput=wanted)
        except self.client.exceptions.AlreadyExistsException:
            self.client.update_table(DatabaseName=database, TableInput=wanted)


def deployer(project: Project, target: ResolvedTarget, **options: Any) -> GlueDeployer | None:
    """The deploy.DEPLOYERS factory: Glue tables for targets that query with Athena (an `athena` section)."""
    if target.settings.athena is None:
        return None
    return GlueDeployer(project, target)


def register_all(project: Project, target: ResolvedTarget) -> list[Action]:
    """Plan and apply the Glue registration alone (tests, and deploy for targets without other deployers)."""
    d = GlueDeployer(project, target)
    actions = d.plan()
    for a in actions:
        if a.status == "todo":
            d.apply(a)
            a.status = "done"
    return actions
