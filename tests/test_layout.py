"""lh360.layout.Lake is the one place that says where things live under a lake; the paths never change (a lake
written by one version of lh360 is read by the next)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lh360.layout import Lake
from lh360.lock import lock_dir, lock_uri

REPO = Path(__file__).resolve().parents[1]


def test_every_path_under_an_s3_lake():
    lake = Lake("s3://bucket/lake/")
    assert lake.table("silver", "clientes") == "s3://bucket/lake/silver/clientes"
    assert lake.state("clientes", "listing.json") == "s3://bucket/lake/_lh360/state/clientes/listing.json"
    assert (lake.runs, lake.checks, lake.erasures) == (
        "s3://bucket/lake/_lh360/runs",
        "s3://bucket/lake/_lh360/checks",
        "s3://bucket/lake/_lh360/erasures",
    )
    assert (
        lake.lock("clientes")
        == lock_uri("s3://bucket/lake", "clientes")
        == "s3://bucket/lake/_lh360/locks/clientes.lock"
    )


def test_every_path_under_a_local_lake(tmp_path):
    lake = Lake(str(tmp_path))
    assert lake.ledger("runs") == str(tmp_path / "_lh360" / "runs")
    assert lock_dir(str(tmp_path)) == tmp_path / "_lh360" / "locks"
    assert lock_uri(str(tmp_path), "t") == str(tmp_path / "_lh360" / "locks" / "t.lock")
    with pytest.raises(ValueError):
        lake.ledger("payloads")


# the Databricks engine still names its payload folder itself (lh360/engines/databricks/requests.py)
LEFT = {"lh360/engines/databricks/requests.py"}


def test_only_the_layout_names_lh360s_folder():
    """`_lh360/...` paths come from Lake, never joined by hand (lh360/spark/ is the self-contained job: it
    receives its paths in the payload)."""
    found = [
        f"{rel}:{n}"
        for path in sorted((REPO / "lh360").rglob("*.py"))
        if (rel := str(path.relative_to(REPO))) not in {"lh360/layout.py", *LEFT} and "spark" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if '"_lh360"' in line
    ]
    assert found == []
