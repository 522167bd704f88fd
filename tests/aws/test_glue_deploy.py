"""`lh360 deploy` refuses what Athena cannot read — a Delta reader feature or protocol Athena lacks, a column
type Glue has no name for — with the reason, at deploy (exit 2), instead of registering a table that fails
every query at validate; what it can read is registered as before."""

from __future__ import annotations

import json

import pyarrow as pa
from awstest import cli, eventos_spec, json_out, make_project


def _delta(s3, name: str, protocol: dict | None = None, extra_field: dict | None = None) -> None:
    """bronze.<name> on the moto lake, its first commit's protocol or schema rewritten as another writer
    (Databricks) would have written them."""
    from deltalake import write_deltalake

    from lh360.storage import delta_storage_options

    uri = f"s3://lake/lh/bronze/{name}"
    write_deltalake(uri, pa.table({"id": pa.array([1, 2], pa.int64())}), storage_options=delta_storage_options(uri))
    key = f"lh/bronze/{name}/_delta_log/00000000000000000000.json"
    actions = [json.loads(line) for line in s3.get_object(Bucket="lake", Key=key)["Body"].read().splitlines()]
    for action in actions:
        if protocol and "protocol" in action:
            action["protocol"] = protocol
        if extra_field and "metaData" in action:
            schema = json.loads(action["metaData"]["schemaString"])
            schema["fields"].append(extra_field)
            action["metaData"]["schemaString"] = json.dumps(schema)
    s3.put_object(Bucket="lake", Key=key, Body="\n".join(json.dumps(a) for a in actions).encode() + b"\n")


def test_deploy_refuses_tables_athena_cannot_read(s3, tmp_path):
    specs = [eventos_spec(), {**eventos_spec(), "table": "pedidos"}, {**eventos_spec(), "table": "itens"}]
    make_project(tmp_path, specs)
    v2 = {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": ["v2Checkpoint"],
        "writerFeatures": ["v2Checkpoint"],
    }
    _delta(s3, "eventos", protocol=v2)
    _delta(s3, "pedidos", extra_field={"name": "nada", "type": "void", "nullable": True, "metadata": {}})
    dv = {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": ["deletionVectors", "timestampNtz"],
        "writerFeatures": ["deletionVectors", "timestampNtz"],
    }
    _delta(s3, "itens", protocol=dv)  # features Athena reads: registered

    proc = cli(tmp_path, "--json", "deploy")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    doc = json_out(proc)
    assert doc["ok"] is False
    actions = {a["object"]: a for a in doc["actions"] if a["deployer"] == "glue"}
    eventos, pedidos, itens = (actions[f"lh360_bronze.{t}"] for t in ("eventos", "pedidos", "itens"))
    assert eventos["status"] == "refused" and "v2Checkpoint" in eventos["reason"]
    assert "Athena reads only columnMapping, deletionVectors, timestampNtz" in eventos["reason"]
    assert pedidos["status"] == "refused" and "'void'" in pedidos["reason"]
    assert itens["status"] == "done"
    import boto3

    glue = boto3.client("glue")
    assert glue.get_table(DatabaseName="lh360_bronze", Name="itens")["Table"]["Parameters"]["table_type"] == "DELTA"
    names = {t["Name"] for t in glue.get_tables(DatabaseName="lh360_bronze")["TableList"]}
    assert names == {"itens"}  # the refused tables were not registered
    text = cli(tmp_path, "deploy")
    assert text.returncode == 2 and "refused" in text.stdout and "v2Checkpoint" in text.stdout


def test_struct_field_names_are_escaped_in_glue_types():
    from lh360.engines.athena.glue import UnknownType, hive_type

    struct = {
        "type": "struct",
        "fields": [
            {"name": "a b", "type": "string"},
            {"name": "x:y", "type": {"type": "array", "elementType": "long"}},
            {"name": "tick`", "type": "date"},
            {"name": "plain_1", "type": "decimal(18,2)"},
        ],
    }
    assert hive_type(struct) == "struct<`a b`:string,`x:y`:array<bigint>,`tick```:date,plain_1:decimal(18,2)>"
    for unknown in ("void", "variant", {"type": "interval"}):
        try:
            hive_type(unknown)
        except UnknownType as exc:
            assert "no Glue/Athena type" in str(exc)
        else:
            raise AssertionError(f"{unknown!r} has a Glue type?")
