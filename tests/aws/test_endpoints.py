"""`aws.endpoint_url` is S3's alone; Athena and Glue take theirs from `aws.endpoints`: a target whose S3 is an
S3-compatible store and whose Athena and Glue are elsewhere (here all three are the moto server, and botocore's
AWS_ENDPOINT_URL variables are unset) runs ingest, deploy and validate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from awstest import cli, json_out, make_project, upload_tree


def test_each_service_uses_its_own_configured_endpoint(s3, tmp_path, monkeypatch, moto_url):
    from lh360.demo.generator import write_landing

    make_project(
        tmp_path, clientes=True, aws={"endpoint_url": moto_url, "endpoints": {"athena": moto_url, "glue": moto_url}}
    )
    write_landing(tmp_path / "gen", rows=80, files=2, seed=4, start=datetime.now(UTC) - timedelta(hours=2))
    upload_tree(s3, tmp_path / "gen", "landing", "raw/clientes")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_ATHENA", "AWS_ENDPOINT_URL_GLUE"):
        monkeypatch.delenv(name, raising=False)
    for args in (["ingest", "clientes"], ["promote", "clientes", "--to", "gold"], ["deploy"]):
        proc = cli(tmp_path, *args)
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    proc = cli(tmp_path, "--json", "validate", "--engine", "athena")
    doc = json_out(proc)
    assert proc.returncode == 0, proc.stderr
    assert doc["engine"] == "athena" and doc["results"] and all(r["query_id"] for r in doc["results"])
