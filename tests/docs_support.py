"""A demo lakehouse for the docs-site tests, built once per module: `lh360 init` + `lh360 demo` (clientes),
plus a second spec, `regioes`, whose gold query reads gold.clientes_por_uf (a gold-to-gold edge), then
`run --all` and one more `validate`, so every check has history in the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REGIOES = {
    "table": "regioes",
    "description": "As cinco regiões do Brasil e seus estados",
    "owner": "Equipe de Dados",
    "tags": {"dominio": "geografia"},
    "source": {"path": "regioes/"},
    "landing": {"max_age": "1h", "min_files": 1, "settle": "0s"},  # tests write files and ingest at once
    "silver": {
        "keys": ["uf"],
        "sequence_by": "updated_at",
        "columns": {"uf": "upper(uf)", "regiao": "regiao", "updated_at": "to_timestamp(updated_at)"},
        "expectations": [{"name": "uf_duas_letras", "rule": "length(uf) = 2", "action": "quarantine"}],
    },
    "gold": {
        "clientes_por_regiao": {
            "description": "Clientes ativos por região",
            "sql": "SELECT r.regiao, sum(g.clientes) AS clientes FROM gold.clientes_por_uf g "
            "JOIN silver.regioes r ON g.uf = r.uf GROUP BY r.regiao",
        }
    },
    "checks": {"gold.clientes_por_regiao": [{"row_count": {"min": 1}}]},
}
UFS = {
    "Norte": ["AC", "AM", "AP", "PA", "RO", "RR", "TO"],
    "Nordeste": ["AL", "BA", "CE", "MA", "PB", "PE", "PI", "RN", "SE"],
    "Centro-Oeste": ["DF", "GO", "MT", "MS"],
    "Sudeste": ["ES", "MG", "RJ", "SP"],
    "Sul": ["PR", "RS", "SC"],
}


@dataclass
class DemoLake:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "configs" / "lh360.yaml"

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        env = {**os.environ, "LH360_CONFIG": str(self.config)}
        return subprocess.run(
            [sys.executable, "-m", "lh360", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    def lakehouse(self, target: str | None = None):
        from lh360.config import load_project
        from lh360.context import Lakehouse

        project = load_project(self.config)
        return Lakehouse(project, project.target(target))

    def ledger_rows(self, which: str) -> list[dict[str, Any]]:
        from lh360.delta import open_table
        from lh360.layout import Lake

        lake = Lake(self.lakehouse().target.lake)
        dt = open_table(lake.runs if which == "runs" else lake.checks)
        if dt is None:
            return []
        import pyarrow as pa
        from deltalake import QueryBuilder

        return pa.table(QueryBuilder().register("l", dt).execute("SELECT * FROM l")).to_pylist()


def regioes_landing(root: Path) -> Path:
    rows = [
        {"uf": uf, "regiao": regiao, "updated_at": "2025-06-01T00:00:00"} for regiao, ufs in UFS.items() for uf in ufs
    ]
    rows.append({"uf": "XYZ", "regiao": "?", "updated_at": "2025-06-01T00:00:00"})  # quarantined: not two letters
    path = root / "lakehouse" / "landing" / "regioes" / "regioes.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def build_demo_lake(root: Path, *, rows: int = 600, files: int = 3) -> DemoLake:
    """The demo project with two specs and a history of two validates."""
    lake = DemoLake(root)
    root.mkdir(parents=True, exist_ok=True)
    for args in (["init", "."], ["demo", "--rows", str(rows), "--files", str(files)]):
        proc = lake.cli(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    (root / "configs" / "tables" / "regioes.yaml").write_text(yaml.safe_dump(REGIOES, sort_keys=False))
    regioes_landing(root)
    for args in (["run", "--all"], ["validate"]):
        proc = lake.cli(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return lake
