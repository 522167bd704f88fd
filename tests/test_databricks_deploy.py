"""`lh360 deploy` on a databricks target, against the fake workspace: uploads the job only when its content
changed, creates the schemas, registers external tables whose location holds data, is idempotent, and
--dry-run changes nothing."""

from __future__ import annotations

import json

import pytest

from lh360.deploy import DEPLOYERS, Action, deploy, deployers_for, register_deployer
from lh360.engines.databricks.code import CodeBundle, code_bundle
from tests.databricks_support import cli, load, make_project

pytest_plugins = ["tests.databricks_fixtures"]  # fake_ws, project_root

WRITES = ("/workspace/import", "/workspace/mkdirs", "/unity-catalog/schemas", "/sql/statements")


def writes(ws, since=0):
    return [r for r in ws.requests[since:] if r.method == "POST" and any(p in r.path for p in WRITES)]


def by_kind(report):
    out = {}
    for a in report.actions:
        out.setdefault(a.kind, []).append(a)
    return out


def test_dry_run_lists_everything_and_changes_nothing(fake_ws, project_root):
    project, target = load(project_root)
    report = deploy(project, target, dry_run=True)
    kinds = by_kind(report)
    assert [a.status for a in kinds["upload_code"]] == ["todo"]
    assert [a.object for a in kinds["create_schema"]] == [
        "lakehouse360.bronze",
        "lakehouse360.silver",
        "lakehouse360.gold",
    ]
    assert {a.status for a in kinds["create_schema"]} == {"todo"}
    tables = {a.object: a.status for a in kinds["register_table"]}
    assert tables == {
        "lakehouse360.bronze.clientes": "deferred",
        "lakehouse360.silver.clientes": "deferred",
        "lakehouse360.silver.clientes_quarantine": "deferred",
        "lakehouse360.gold.clientes_por_uf": "deferred",
        "lakehouse360.gold.clientes_por_segmento": "deferred",
    }
    assert writes(fake_ws) == [] and not fake_ws.schemas and "/Shared/lh360" not in fake_ws.objects


def test_deploy_uploads_creates_schemas_and_is_idempotent(fake_ws, project_root):
    project, target = load(project_root)
    first = deploy(project, target)
    assert {a.status for a in first.actions if a.kind != "register_table"} == {"done"}
    bundle = code_bundle()
    assert fake_ws.objects["/Shared/lh360/lh360_job.py"].object_type == "FILE"  # a file, not a notebook
    assert fake_ws.file("/Shared/lh360/lh360_job.py") == bundle.files["lh360_job.py"]
    assert fake_ws.file("/Shared/lh360/transforms.py") == bundle.files["transforms.py"]
    manifest = json.loads(fake_ws.file("/Shared/lh360/lh360_code.json"))
    assert manifest["sha256"] == bundle.sha256
    imports = [r.body["path"] for r in fake_ws.requests_to("/workspace/import")]
    assert imports[-1].endswith("lh360_code.json")  # the manifest last: a half upload never looks deployed
    assert set(fake_ws.schemas) == {"lakehouse360.bronze", "lakehouse360.silver", "lakehouse360.gold"}

    n = len(fake_ws.requests)
    second = deploy(project, target)
    assert {a.status for a in second.actions if a.kind != "register_table"} == {"ok"}
    assert writes(fake_ws, n) == []


def test_a_changed_job_is_uploaded_again(fake_ws, project_root, monkeypatch):
    import lh360.engines.databricks.engine as dbx

    project, target = load(project_root)
    deploy(project, target)
    changed = CodeBundle({**code_bundle().files, "transforms.py": b"# v2\n"})
    monkeypatch.setattr(dbx, "code_bundle", lambda: changed)
    import lh360.engines.databricks.deploy as dd

    monkeypatch.setattr(dd, "code_bundle", lambda: changed)
    report = deploy(project, target)
    (upload,) = by_kind(report)["upload_code"]
    assert upload.status == "done" and "→" in upload.reason
    assert fake_ws.file("/Shared/lh360/transforms.py") == b"# v2\n"


def test_tables_with_data_are_registered_on_the_warehouse(fake_ws, project_root):
    project, target = load(project_root)
    log = project_root / "lake-prod" / "bronze" / "clientes" / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text("{}\n")
    report = deploy(project, target)
    (bronze,) = [a for a in report.actions if a.object == "lakehouse360.bronze.clientes"]
    assert bronze.status == "done"
    (st,) = fake_ws.statements.values()
    assert st.body["statement"] == (
        "CREATE TABLE IF NOT EXISTS `lakehouse360`.`bronze`.`clientes` USING DELTA "
        f"LOCATION '{project_root / 'lake-prod' / 'bronze' / 'clientes'}'"
    )
    assert st.body["warehouse_id"] == "wh-fake-1"
    # once the catalog knows it, deploy leaves it alone
    fake_ws.tables["lakehouse360.bronze.clientes"] = {"full_name": "lakehouse360.bronze.clientes"}
    again = deploy(project, target)
    (bronze,) = [a for a in again.actions if a.object == "lakehouse360.bronze.clientes"]
    assert bronze.status == "ok" and len(fake_ws.statements) == 1


def test_without_a_warehouse_registration_is_skipped_with_the_reason(fake_ws, tmp_path):
    root = tmp_path / "nowh"
    root.mkdir()
    make_project(root, databricks={"warehouse_id": None})
    log = root / "lake-prod" / "silver" / "clientes" / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text("{}\n")
    project, target = load(root)
    report = deploy(project, target)
    (silver,) = [a for a in report.actions if a.object == "lakehouse360.silver.clientes"]
    assert silver.status == "skipped" and "warehouse_id" in silver.reason and not fake_ws.statements


def test_a_local_target_has_nothing_to_deploy(fake_ws, project_root):
    from lh360.config import load_project

    project = load_project(project_root / "configs" / "lh360.yaml")
    assert deploy(project, project.target("local")).actions == []
    assert fake_ws.requests == []


def test_deployers_are_an_extension_point(fake_ws, project_root):
    project, target = load(project_root)

    class Glue:
        name = "glue"
        applied: list[str] = []

        def plan(self):
            return [Action("glue", "register_glue_table", "lh360_bronze.clientes", "todo", "missing")]

        def apply(self, action):
            self.applied.append(action.object)

    import sys
    import types

    mod = types.ModuleType("lh360_test_glue")
    mod.factory = lambda project, target, **kw: Glue()
    sys.modules["lh360_test_glue"] = mod
    try:
        register_deployer("lh360_test_glue:factory")
        assert [d.name for d in deployers_for(project, target)] == ["databricks", "glue"]
        report = deploy(project, target, dry_run=True)
        assert report.actions[-1].as_dict()["deployer"] == "glue" and Glue.applied == []
    finally:
        DEPLOYERS.remove("lh360_test_glue:factory")
        del sys.modules["lh360_test_glue"]


@pytest.mark.slow
def test_deploy_command_json_and_dry_run(fake_ws, project_root):
    proc = cli(project_root, "-t", "prod", "deploy", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dry_run"] is True and doc["counts"]["todo"] == 4
    assert not fake_ws.schemas
    proc = cli(project_root, "-t", "prod", "deploy")
    assert proc.returncode == 0, proc.stderr
    assert "done" in proc.stdout and "upload_code" in proc.stdout and fake_ws.schemas
    assert "4 done, 5 deferred" in proc.stdout
    assert fake_ws.token not in proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("status", [403])
def test_a_workspace_error_is_exit_3(fake_ws, project_root, status):
    fake_ws.inject_http_errors("/api/2.1/unity-catalog/schemas", [status] * 3)
    proc = cli(project_root, "-t", "prod", "deploy")
    assert proc.returncode == 3, proc.stderr
    assert "deploy" in proc.stderr and "injected HTTP 403" in proc.stderr
