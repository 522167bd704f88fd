"""What `lh360 deploy` does on a `databricks` target (a deployer of lh360.deploy).

1. upload_code     lh360's Spark job (lh360_job.py, transforms.py) to `databricks.workspace_dir`, only
                   when the content hash differs from the one deployed (lh360_code.json, written last);
2. create_schema   `<catalog>.bronze`, `.silver`, `.gold` through the Unity Catalog API, when missing;
3. register_table  each table of every spec as an external Delta table at its lake path
                   (`CREATE TABLE IF NOT EXISTS … USING DELTA LOCATION …` on the SQL warehouse), when it
                   is not registered yet and its location already holds a Delta table. A table with no data
                   yet is `deferred`: the job registers it after its first write.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.deploy import Action
from lh360.engines.databricks.client import api_error, is_not_found, settings_of, workspace_client, workspace_dir_api
from lh360.engines.databricks.code import (
    JOB_FILE,
    MANIFEST_FILE,
    code_bundle,
    read_workspace_json,
    write_workspace_file,
)
from lh360.engines.databricks.requests import quarantine_table
from lh360.engines.databricks.statements import DatabricksSQLRunner
from lh360.layout import LAYERS, Lake
from lh360.sql import quote
from lh360.storage import join, store_for

log = logging.getLogger("lh360.databricks.deploy")


def deployer(project: Project, target: ResolvedTarget, **options: Any) -> DatabricksDeployer | None:
    if target.engine != "databricks" or target.settings.databricks is None:
        return None
    return DatabricksDeployer(project, target, **options)


class DatabricksDeployer:
    name = "databricks"

    def __init__(
        self,
        project: Project,
        target: ResolvedTarget,
        *,
        client: Any = None,
        sql_runner: Any = None,
        timeout: float | None = None,
        poll_interval: float | None = None,
        **_: Any,
    ) -> None:
        self.project = project
        self.target = target
        self.settings = settings_of(target)
        self._client = client
        self._sql = sql_runner
        self.timeout = timeout
        self.poll_interval = poll_interval

    @property
    def client(self):
        if self._client is None:
            self._client = workspace_client(self.target, retry_seconds=self.timeout)
        return self._client

    @property
    def sql(self):
        if self._sql is None:
            self._sql = DatabricksSQLRunner(
                self.target, timeout=self.timeout, poll_interval=self.poll_interval, client=self.client
            )
        return self._sql

    def _action(self, kind: str, obj: str, status: str, reason: str = "", **kw: Any) -> Action:
        return Action(self.name, kind, obj, status, reason, **kw)

    # ---- plan ----------------------------------------------------------------------------------------

    def plan(self) -> list[Action]:
        from databricks.sdk.errors import DatabricksError

        try:
            actions = [self._plan_code()]
            schemas = self._plan_schemas()
            actions += schemas
            missing = {a.object for a in schemas if a.status == "todo"}
            actions += self._plan_tables(missing)
        except DatabricksError as exc:
            raise api_error(f"deploy to target {self.target.name}: looking at the workspace", exc) from None
        return actions

    def _plan_code(self) -> Action:
        from databricks.sdk.errors import DatabricksError

        bundle = code_bundle()
        folder = self.settings.workspace_dir.rstrip("/")
        data = {"bundle": bundle}
        try:
            remote = read_workspace_json(self.client, f"{workspace_dir_api(folder)}/{MANIFEST_FILE}") or {}
        except DatabricksError as exc:
            if not is_not_found(exc):
                raise
            remote = {}
        files = ", ".join(sorted(bundle.files))
        if remote.get("sha256") == bundle.sha256:
            return self._action("upload_code", folder, "ok", f"unchanged (sha256 {bundle.sha256[:12]})", data=data)
        why = (
            f"sha256 {str(remote['sha256'])[:12]} → {bundle.sha256[:12]}"
            if remote.get("sha256")
            else f"not deployed yet (sha256 {bundle.sha256[:12]})"
        )
        return self._action("upload_code", folder, "todo", f"{files}, {MANIFEST_FILE}: {why}", data=data)

    def _schema_names(self) -> list[str]:
        return [f"{quote(self.settings.catalog, 'databricks')}.{quote(layer, 'databricks')}" for layer in LAYERS]

    def _plan_schemas(self) -> list[Action]:
        from databricks.sdk.errors import DatabricksError

        out = []
        for layer, name in zip(LAYERS, self._schema_names(), strict=True):
            full = f"{self.settings.catalog}.{layer}"
            try:
                self.client.schemas.get(full)
                out.append(self._action("create_schema", full, "ok", "exists"))
            except DatabricksError as exc:
                if not is_not_found(exc):
                    raise
                out.append(
                    self._action(
                        "create_schema",
                        full,
                        "todo",
                        "missing",
                        sql=f"CREATE SCHEMA IF NOT EXISTS {name}",
                        data={"layer": layer},
                    )
                )
        return out

    def relations(self) -> list[tuple[str, str, str]]:
        """(display name, quoted full name, lake path) of every table the specs define, bronze → gold."""

        lake = Lake(self.target.lake)
        c = self.settings.catalog
        out = []
        for table in sorted(self.project.specs):
            spec = self.project.specs[table]
            for rel in spec.relations():
                layer, name = rel.split(".", 1)
                full = ".".join(quote(p, "databricks") for p in (c, layer, name))
                out.append((f"{c}.{layer}.{name}", full, lake.table(layer, name)))
                if layer == "silver":
                    out.append(
                        (f"{c}.silver.{table}_quarantine", quarantine_table(c, table), lake.table("quarantine", table))
                    )
        return out

    def _plan_tables(self, missing_schemas: set[str]) -> list[Action]:
        from lh360.spark.contract import create_external_table_sql

        out = []
        for display, full, path in self.relations():
            schema = display.rsplit(".", 1)[0]
            if schema not in missing_schemas and self.client.tables.exists(display).table_exists:
                out.append(self._action("register_table", display, "ok", "registered"))
                continue
            sql = create_external_table_sql(full, path)
            has_data, why = self._has_delta(path)
            if has_data is None:
                out.append(
                    self._action("register_table", display, "skipped", f"could not look at {path}: {why}", sql=sql)
                )
            elif not has_data:
                out.append(
                    self._action(
                        "register_table",
                        display,
                        "deferred",
                        f"no Delta table at {path} yet; the job registers it after its first write",
                    )
                )
            elif not self.settings.warehouse_id:
                out.append(
                    self._action(
                        "register_table",
                        display,
                        "skipped",
                        "needs databricks.warehouse_id to run DDL; the job registers it on its next run",
                        sql=sql,
                    )
                )
            else:
                out.append(self._action("register_table", display, "todo", f"external Delta table at {path}", sql=sql))
        return out

    def _has_delta(self, path: str) -> tuple[bool | None, str]:
        try:
            store = store_for(path, self.target.settings.aws)
            return next(iter(store.list(join(path, "_delta_log"))), None) is not None, ""
        except Exception as exc:  # noqa: BLE001 - no credentials, no bucket: say so, decide nothing
            return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    # ---- apply ---------------------------------------------------------------------------------------

    def apply(self, action: Action) -> None:
        from databricks.sdk.errors import DatabricksError

        try:
            if action.kind == "upload_code":
                self._upload(action.data["bundle"])
            elif action.kind == "create_schema":
                self.client.schemas.create(
                    name=action.data["layer"],
                    catalog_name=self.settings.catalog,
                    comment=f"lh360 {action.data['layer']} layer (external Delta tables under {self.target.lake})",
                )
            elif action.kind == "register_table":
                self.sql.execute(action.sql, timeout=self.timeout)
            else:  # pragma: no cover
                raise ValueError(f"unknown action {action.kind}")
        except DatabricksError as exc:
            if action.kind == "create_schema" and getattr(exc, "error_code", "") in (
                "SCHEMA_ALREADY_EXISTS",
                "ALREADY_EXISTS",
            ):
                return  # created meanwhile by someone else: what we wanted
            raise api_error(f"deploy: {action.kind} {action.object}", exc) from None
        log.info("deployed", extra={"fields": action.as_dict()})

    def _upload(self, bundle) -> None:
        folder = workspace_dir_api(self.settings.workspace_dir)
        self.client.workspace.mkdirs(folder)
        for name in sorted(bundle.files, key=lambda n: n == JOB_FILE):  # the entry point after its module
            write_workspace_file(self.client, f"{folder}/{name}", bundle.files[name])
        manifest = json.dumps(bundle.manifest(), indent=2).encode()
        write_workspace_file(self.client, f"{folder}/{MANIFEST_FILE}", manifest)  # last: marks the upload complete
