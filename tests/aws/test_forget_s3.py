"""`lh360 forget` with landing and lake on S3 (the moto server), both buckets versioned: the rewritten landing
objects keep no older version, `--vacuum` leaves no object version anywhere holding the person, and ingest
takes nothing again."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

from awstest import cli, json_out, make_project, upload_tree

from tests.forget_support import needles, records, someone


def every_version(s3, bucket: str) -> list[tuple[str, bytes]]:
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
            out.append((f"{v['Key']}@{v['VersionId']}", body))
    return out


def holding(s3, buckets: list[str], wanted: list[str], tmp_path) -> list[str]:
    import pyarrow.parquet as pq

    found = []
    for bucket in buckets:
        for name, data in every_version(s3, bucket):
            texts = [data]
            if data[:2] == b"\x1f\x8b":
                texts.append(gzip.decompress(data))
            if data[:4] == b"PAR1":
                local = tmp_path / "probe.parquet"
                local.write_bytes(data)
                texts.append(json.dumps(pq.read_table(local).to_pylist(), default=str, ensure_ascii=False).encode())
            found += [f"{bucket}/{name}: {w}" for w in wanted if any(w.encode() in t for t in texts)]
    return found


def test_forget_on_s3_deletes_every_version_holding_the_person(s3, tmp_path):
    from lh360.demo.generator import write_landing

    for bucket in ("landing", "lake"):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    make_project(tmp_path, clientes=True)
    folder = tmp_path / "landing" / "clientes"
    write_landing(folder, rows=300, files=3, seed=7, gzip_every=2, start=datetime.now(UTC) - timedelta(hours=20))
    upload_tree(s3, folder, "landing", "raw/clientes")
    for args in (["ingest", "clientes"], ["promote", "clientes", "--to", "gold"]):
        proc = cli(tmp_path, "--json", *args)
        assert proc.returncode == 0, proc.stderr

    class Local:
        landing = tmp_path / "landing"

    person = someone(Local)
    wanted = needles(Local, person)
    assert holding(s3, ["landing", "lake"], wanted[:1], tmp_path)
    proc = cli(tmp_path, "--json", "forget", "clientes", "--key", f"cpf={person['cpf']}", "--vacuum")
    doc = json_out(proc)
    assert proc.returncode == 0 and doc["matched"], proc.stderr
    assert doc["layers"]["landing.clientes"]["files"] >= 1 and doc["noncurrent_versions"] >= 1
    assert holding(s3, ["landing", "lake"], wanted, tmp_path) == []
    # the other people are all still there, and ingest sees lh360's own rewrite
    assert len([r for r in records(Local) if r.get("id") != person["id"]]) > 0
    proc = cli(tmp_path, "--json", "ingest", "clientes")
    (ingest,) = json_out(proc)["tables"]
    assert ingest["files"] == 0 and ingest["rewritten"] == [], ingest
    proc = cli(tmp_path, "--json", "sql", "--engine", "duckdb", "SELECT count(*) FROM silver.clientes WHERE id = 1")
    assert proc.returncode == 0
