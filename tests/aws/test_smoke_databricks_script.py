"""scripts/smoke-databricks.sh, run as a user runs it, against the fake Databricks workspace and the moto S3
(no real workspace here): it passes end to end and leaves nothing behind, a failing step says which and
what to check (and still cleans up), and without configuration it says it is skipped."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from awstest import REGION, create_buckets

from tests.databricks_support import REPO, passing_checks, summary_line

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws

SCRIPT = REPO / "scripts" / "smoke-databricks.sh"


def smoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LH360_SMOKE_")}
    full.update(PYTHON=sys.executable, PYTHONPATH=str(REPO), LH360_POLL_INTERVAL="0.01", **(env or {}))
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=600, env=full)


def workspace_args() -> list[str]:
    return [
        "--bucket",
        "s3://lake/scratch",
        "--catalog",
        "lakehouse360",
        "--warehouse-id",
        "wh-smoke",
        "--region",
        REGION,
    ]


def s3_keys(prefix: str) -> list[str]:
    import boto3

    resp = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket="lake", Prefix=prefix)
    return [o["Key"] for o in resp.get("Contents", [])]


def sent_payload(body: dict) -> dict:
    """The job's payload of a submitted run: inline, or the payload file in the lake."""
    import json

    from lh360.storage import store_for

    params = body["tasks"][0]["spark_python_task"]["parameters"]
    if params[2] == "--payload":
        return json.loads(params[3])
    return json.loads(store_for(params[3]).read_bytes(params[3]))


def silver_like_the_job(body: dict) -> None:
    """What a refine run leaves in the lake that `quarantine replay` reads before it sends anything: silver
    and quarantine as Delta tables with the spec's stored columns (the fake workspace runs no Spark)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from lh360.storage import delta_storage_options

    if body["tasks"][0]["spark_python_task"]["parameters"][1] != "refine":
        return
    payload = sent_payload(body)
    silver = payload["spec"]["silver"]
    pii = silver.get("pii") or {}
    stored = [c for c in silver["columns"] if (pii.get(c) or {}).get("silver") != "drop"]
    row = pa.table({c: ["x"] for c in stored})
    for layer in ("silver", "quarantine"):
        uri = payload["paths"][layer]
        data = row if layer == "silver" else row.append_column("_failed_rules", pa.array([["uf_valida"]]))
        write_deltalake(uri, data, mode="append", storage_options=delta_storage_options(uri))


def test_the_smoke_test_passes_end_to_end_and_cleans_up(fake_ws):
    create_buckets()
    fake_ws.on_submit = silver_like_the_job
    fake_ws.script_run("success", logs=summary_line("ingest", rows_in=200, rows_out=200, files=2, rescued=3))
    fake_ws.script_run("success", logs=summary_line("ingest", rows_in=0, rows_out=0, files=0))
    fake_ws.script_run("success", logs=summary_line("refine", rows_in=200, kept=190, rows_out=150, inserted=150))
    fake_ws.script_run("success", logs=summary_line("aggregate", rows_out=27))
    fake_ws.script_run("success", logs=summary_line("aggregate", rows_out=12))
    nothing = {"replay_run": None, "evaluated": 4, "passed": 0, "still_quarantined": 4}
    fake_ws.script_run("success", logs=summary_line("replay", **nothing))
    lifted = {"replay_run": 0, "evaluated": 4, "passed": 1, "inserted": 1, "updated": 0, "stale": 0}
    fake_ws.script_run("success", logs=summary_line("replay", **lifted, still_quarantined=3))
    fake_ws.script_run("success", logs=summary_line("replay", **{**nothing, "evaluated": 3, "still_quarantined": 3}))
    fake_ws.sql_handler = passing_checks
    proc = smoke(*workspace_args())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "PASSED" in proc.stdout
        and "replay 0: 1 passed (1 inserted, 0 updated, 0 stale); again: 0 passed" in proc.stdout
    )
    names = [b["run_name"] for b in fake_ws.submitted]
    steps = ["ingest", "ingest", "refine", "aggregate", "aggregate", "replay", "replay", "replay"]
    assert [n.split(" ")[1] for n in names] == steps
    # the second replay ran with uf_valida lifted from the spec the job received
    rules = [e["name"] for e in sent_payload(fake_ws.submitted[6])["spec"]["silver"]["expectations"]]
    assert "uf_valida" not in rules and "cpf_11_digitos" in rules
    assert all("lh360_smoke_" in n for n in names)
    # the landing zone was generated and uploaded, then everything was removed again
    landing_uploads = [b for b in fake_ws.submitted if "ingest" in b["run_name"]]
    assert landing_uploads
    assert s3_keys("scratch/") == []
    assert not [p for p in fake_ws.objects if "lh360_smoke_" in p]
    drops = [s.body["statement"] for s in fake_ws.statements.values() if s.body["statement"].startswith("DROP TABLE")]
    assert len(drops) == 5 and all("lh360_smoke_" in d for d in drops)


def test_a_replay_that_merges_nothing_after_a_rule_was_lifted_fails_the_smoke_test(fake_ws):
    create_buckets()
    fake_ws.on_submit = silver_like_the_job
    for step, counters in [
        ("ingest", {"rows_in": 200, "rows_out": 200, "files": 2}),
        ("ingest", {"rows_in": 0, "rows_out": 0, "files": 0}),
        ("refine", {"rows_in": 200, "kept": 190, "rows_out": 150, "inserted": 150}),
        ("aggregate", {"rows_out": 27}),
        ("aggregate", {"rows_out": 12}),
        ("replay", {"replay_run": None, "evaluated": 4, "passed": 0}),
        ("replay", {"replay_run": None, "evaluated": 4, "passed": 0}),  # the lifted rule let nothing through
        ("replay", {"replay_run": None, "evaluated": 4, "passed": 0}),
    ]:
        fake_ws.script_run("success", logs=summary_line(step, **counters))
    fake_ws.sql_handler = passing_checks
    proc = smoke(*workspace_args())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED at 'replay counters after lifting a rule'" in proc.stderr
    assert s3_keys("scratch/") == []  # cleaned up all the same


def test_a_failing_step_says_which_and_what_to_check_and_still_cleans_up(fake_ws):
    create_buckets()
    fake_ws.script_run("failed", error="AnalysisException: PERMISSION_DENIED: READ FILES on s3://lake/scratch")
    proc = smoke(*workspace_args())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED at 'ingest' (exit 3)" in proc.stderr
    assert "what to check: an external location covering s3://lake/scratch" in proc.stderr
    assert "PERMISSION_DENIED" in proc.stderr  # lh360's own one line, above the hint
    assert s3_keys("scratch/") == []
    assert not [p for p in fake_ws.objects if "lh360_smoke_" in p]


def test_without_a_workspace_it_says_it_is_skipped():
    proc = smoke()
    assert proc.returncode == 0 and "SKIPPED" in proc.stdout and "CI has no Databricks workspace" in proc.stdout


@pytest.mark.parametrize("args, says", [(["--bucket", "s3://b/x"], "missing --catalog --warehouse-id"),
                                        (["--bucket", "/tmp/x", "--catalog", "c", "--warehouse-id", "w"], "s3:// URI")])  # fmt: skip
def test_bad_usage_is_exit_2(args, says):
    proc = smoke(*args, env={"DATABRICKS_HOST": "http://127.0.0.1:9"})
    assert proc.returncode == 2 and says in proc.stderr
