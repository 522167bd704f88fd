"""Options of the commands that run steps on Databricks (`ingest`, `promote`, `run`), kept apart from the
command modules so importing them registers no command (the order of `lh360 --help` stays the modules').

A command adds `timeout: str = TIMEOUT`, `run_id: str = RUN_ID` (and `detach: bool = DETACH` where a step
stands alone), then either passes `**engine_options(st, timeout=…, detach=…, run_id=…)` to a runner that
hands them to `engine_for` (ingest), or runs its runner inside `with engine_context(st, …):` (promote, run:
their runners build engines themselves). The Databricks engine takes them; on a local target they are a
usage error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

TIMEOUT = typer.Option(
    None,
    "--timeout",
    metavar="DURATION",
    help="Databricks: cancel a run still going after this long and exit 4 (e.g. 45m, 2h; default: the "
    "target's databricks.timeout, else no limit).",
)
DETACH = typer.Option(False, "--detach", help="Databricks: submit the run, print its id and return at once.")
RUN_ID = typer.Option(
    None,
    "--run-id",
    metavar="ID",
    help="Databricks: the logical id of this run (e.g. your scheduler's run id or $(date +%F)); exactly one "
    "Databricks run per step, table and ID, even when retried on another machine.",
)


def engine_options(
    st: Any, *, timeout: str | None = None, detach: bool = False, run_id: str | None = None
) -> dict[str, Any]:
    """What `engine_for(target, **options)` needs from these options; a usage error where they make no sense."""
    from lh360.errors import UsageError

    target = st.resolved_target()
    given = [name for name, v in (("--timeout", timeout), ("--detach", detach), ("--run-id", run_id)) if v]
    if target.engine != "databricks":
        if given:
            raise UsageError(
                f"{', '.join(given)}: only for runs on Databricks; target {target.name!r} runs on {target.engine}"
            )
        return {}
    if run_id is not None and not run_id.strip():
        raise UsageError("--run-id: must not be empty")
    opts: dict[str, Any] = {"status_out": st.out}
    if timeout:
        from lh360.engines.databricks import _seconds

        opts["timeout"] = _seconds(timeout)
    if detach:
        opts["detach"] = True
    if run_id:
        opts["run_id"] = run_id.strip()
    return opts


@contextmanager
def engine_context(
    st: Any, *, timeout: str | None = None, detach: bool = False, run_id: str | None = None
) -> Iterator[dict[str, Any]]:
    """The options of engine_options() for every Databricks engine built inside the block."""
    opts = engine_options(st, timeout=timeout, detach=detach, run_id=run_id)
    if not opts:
        yield opts
        return
    from lh360.engines.databricks import CONTEXT

    token = CONTEXT.set(opts)
    try:
        yield opts
    finally:
        CONTEXT.reset(token)


def render_runs(out: Any, results: list[Any], title: str = "databricks runs") -> None:
    """A table of RunResults: step, table, run, state, time, rows, run page."""
    from rich.table import Table

    from lh360.durations import format_duration

    t = Table(title=title, title_justify="left")
    for col in ("step", "table", "run", "state", "time", "rows in", "rows out", "run page"):
        t.add_column(col, justify="right" if col in ("run", "time", "rows in", "rows out") else "left")
    for r in results:
        d = r.as_dict()
        job = d.get("job") or {}
        state = (
            "DETACHED " + (d["state"] or "") if d.get("detached") else (d.get("result_state") or d.get("state") or "-")
        )
        t.add_row(
            d["step"],
            d["table"],
            str(d.get("run_id") or "-"),
            state,
            format_duration(d.get("seconds") or 0),
            _n(job.get("rows_in")),
            _n(job.get("rows_out")),
            d.get("run_page_url") or "-",
        )
    out.print(t)


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)
