"""A forget that dies half-way (at every step boundary, and kill -9 at random instants) is finished by
running it again: the lakehouse ends as after an uninterrupted forget, nothing half-erased, bronze
append-only again, ingest takes nothing, and the erasure ledger records the request once as erased."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import REPO, TEST_PII_KEY, _make, read_table
from tests.forget_support import build, holders, needles, records, someone


class Killed(BaseException):
    """Stands for kill -9: nothing after the raise runs, no `except Exception` catches it."""


def snapshot(root: Path) -> dict:
    def rows(relation: str, cols: list[str]) -> list:
        return sorted(
            (
                tuple(os.path.basename(str(r[c])) if c == "_source_file" else r[c] for c in cols)
                for r in read_table(root, relation)
            ),
            key=repr,
        )

    return {
        "bronze": rows("bronze.clientes", ["id", "cpf", "_line", "_source_file"]),
        "silver": rows("silver.clientes", ["id", "cpf", "email", "updated_at"]),
        "quarantine": rows("quarantine.clientes", ["id", "cpf", "_failed_rules"]),
        "gold": rows("gold.clientes_por_uf", ["uf", "clientes"])
        + rows("gold.clientes_por_segmento", ["segmento", "canal_origem", "clientes"]),
        "landing": sorted(str(sorted(r.items())) for r in records_of(root)),
    }


def records_of(root: Path) -> list[dict]:
    return records(SimpleNamespace(landing=root / "landing"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The clientes lakehouse after one uninterrupted forget of `person` (with --vacuum)."""
    os.environ["LH360_PII_KEY"] = TEST_PII_KEY
    try:
        root = tmp_path_factory.mktemp("ref")
        p = build(lambda spec, name: _make(root / name, [spec], None), name="p", validate=False)
        person = someone(p)
        lakehouse(p).forget("clientes", [f"cpf={person['cpf']}"], vacuum=True)
        return p, person, snapshot(p.root)
    finally:
        os.environ.pop("LH360_PII_KEY", None)


def lakehouse(p):
    from lh360.context import Lakehouse

    project = p.load()
    return Lakehouse(project, project.target())


def after(obj, name: str, when=lambda *a, **kw: True):
    """A replacement of obj.name that runs it, then dies (on the first call for which `when` holds)."""
    original = getattr(obj, name)

    def wrapper(*a, **kw):
        out = original(*a, **kw)
        if when(*a, **kw):
            raise Killed(name)
        return out

    return wrapper


def before(obj, name: str, when=lambda *a, **kw: True):
    original = getattr(obj, name)

    def wrapper(*a, **kw):
        if when(*a, **kw):
            raise Killed(name)
        return original(*a, **kw)

    return wrapper


def committing(layer: str):
    return lambda *a, **kw: str(kw.get("what", a[-1] if a else "")).startswith(layer)


def nth(n: int):
    calls = {"n": 0}

    def when(*a, **kw):
        calls["n"] += 1
        return calls["n"] == n

    return when


def _points():
    from lh360 import forget as erase
    from lh360.context import Lakehouse
    from lh360.engines.local import forget as local
    from lh360.engines.local import ingest_state, rewrite
    from lh360.erasure import Journal
    from lh360.ledger import Ledger

    return {
        "journal saved": (Journal, "save", after, nth(1)),
        "silver committed": (rewrite.TableFiles, "_commit", after, committing("silver")),
        "a landing file rewritten": (local, "_rewrite_file", after, nth(1)),
        "before the rewrite is recorded": (ingest_state, "record_rewrites", before, nth(1)),
        "bronze off append-only": (rewrite, "set_append_only", before, nth(1)),
        "bronze committed": (rewrite.TableFiles, "_commit", after, committing("bronze")),
        "samples scrubbed": (erase, "scrub_samples", after, nth(1)),
        "a gold relation recomputed": (Lakehouse, "_aggregate_one", after, nth(1)),
        "one table purged": (rewrite, "purge", before, nth(2)),
        "erasure recorded": (Ledger, "record_erasure", after, nth(1)),
    }


@pytest.mark.slow
@pytest.mark.parametrize("point", list(_points()))
def test_a_forget_killed_at_each_step_is_finished_by_a_rerun(project, reference, point, monkeypatch):
    from lh360.ledger import Ledger

    ref, person, expected = reference
    p = build(project, validate=False)
    assert someone(p) == person
    obj, name, how, when = _points()[point]
    with monkeypatch.context() as m:
        m.setattr(obj, name, how(obj, name, when))
        with pytest.raises(Killed):
            lakehouse(p).forget("clientes", [f"cpf={person['cpf']}"], vacuum=True)
    result = lakehouse(p).forget("clientes", [f"cpf={person['cpf']}"], vacuum=True)
    assert snapshot(p.root) == expected, point
    assert holders(p.root, needles(ref, person)) == [], point
    from lh360.delta import open_table

    bronze = open_table(str(p.lake / "bronze" / "clientes"))
    assert bronze.metadata().configuration.get("delta.appendOnly") == "true"
    erased = [r for r in Ledger(p.load().target()).erasures("clientes") if r["status"] == "erased"]
    assert len(erased) == 1 and (erased[0]["resumed"] or point == "erasure recorded")
    assert result.matched or point == "erasure recorded"
    ingest = lakehouse(p).ingest(["clientes"])[0]
    assert ingest.files == 0 and ingest.rewritten == []
    assert not list((p.lake / "_lh360" / "state" / "clientes" / "forget").glob("*.json"))


@pytest.mark.slow
def test_kill_9_at_random_instants_then_a_rerun_equals_an_uninterrupted_forget(project, reference):
    ref, person, expected = reference
    p = build(project, validate=False)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LH360_CONFIG", None)
    rng = random.Random(14)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "lh360", "forget", "clientes", "--key", f"cpf={person['cpf']}", "--vacuum"],
            cwd=p.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    code = subprocess.run(
        [sys.executable, "-m", "lh360", "forget", "clientes", "--key", f"cpf={person['cpf']}", "--vacuum"],
        cwd=p.root,
        env=env,
        capture_output=True,
    ).returncode
    assert code == 0
    assert snapshot(p.root) == expected
    assert holders(p.root, needles(ref, person)) == []
    assert kills >= 1
