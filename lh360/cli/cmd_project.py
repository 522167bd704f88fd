"""Project commands: init, lint, tables, demo."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lh360.cli import app, render, state
from lh360.cli.options import SchemaKind
from lh360.errors import ConfigError
from lh360.schemas import json_schema


@app.command()
def init(
    ctx: typer.Context,
    directory: Path = typer.Argument(Path("."), help="Where to create configs/ (default: here)."),
    from_terraform: Path = typer.Option(
        None, "--from-terraform", help="`terraform output -json` file: write its prod target."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
) -> None:
    """Scaffold configs/ with a working example (a local target, a prod target and the clientes spec).

    Example:  lh360 init my-lakehouse && cd my-lakehouse && lh360 demo
    """
    from lh360.project_init import init_project  # importlib.resources (templates): off the --help path

    st = state(ctx)
    written = init_project(directory, force=force, from_terraform=from_terraform)
    if st.out.json:
        st.out.emit({"ok": True, "written": [str(p) for p in written]})
        return
    for p in written:
        st.out.print(f"wrote {p}")
    if not written:
        st.out.print("nothing to write: configs/ already exists (use --force to overwrite)")


@app.command()
def lint(ctx: typer.Context) -> None:
    """Validate the config and every spec, and compile all their SQL for every dialect; nothing runs.

    One error per line, naming file, line and field; exit 2 if there is any. Warnings (casts that fail under
    ANSI mode when a target runs on Databricks) are listed too and do not change the exit code.

    Example:  lh360 lint
    """
    from lh360.lint import lint as run_lint  # pydantic, yaml: off the --help path
    from lh360.lint import lint_warnings  # pydantic, yaml: off the --help path

    st = state(ctx)
    project, errors = run_lint(st.config, st.target)  # --target: read that target's Delta logs for types
    warnings = lint_warnings(project) if project else []
    n_specs = len(project.specs) if project else 0
    if st.out.json:
        st.out.emit(
            {
                "ok": not errors,
                "specs": n_specs,
                "errors": [{"file": e.file, "line": e.line, "field": e.field, "message": e.reason} for e in errors],
                "warnings": [{"file": w.file, "line": w.line, "field": w.field, "message": w.reason} for w in warnings],
            }
        )
    else:
        for e in errors:
            st.out.err.print(str(e), markup=False, highlight=False)
        for w in warnings:  # they do not change the exit code
            st.out.err.print(f"warning: {w}", markup=False, highlight=False)
        if not errors:
            st.out.print(
                f"ok: config and {n_specs} spec(s) are valid; all SQL compiles for duckdb, athena and databricks"
            )
    if errors:
        raise typer.Exit(ConfigError.exit_code)


@app.command()
def tables(ctx: typer.Context) -> None:
    """List the specs and, per layer, rows, Delta version and last commit; a silver table built with another
    version of its spec says a full refresh is due.

    Example:  lh360 tables --json
    """
    st = state(ctx)
    lh = st.lakehouse()
    rows = lh.tables()
    if st.out.json:
        st.out.emit({"target": lh.target.name, "tables": rows})
        return
    render.render_tables(st.out, lh.target.name, rows)


@app.command()
def demo(
    ctx: typer.Context,
    rows: int = typer.Option(5000, "--rows", min=1, help="Records to generate."),
    files: int = typer.Option(10, "--files", min=1, help="Landing files to spread them over."),
    seed: int = typer.Option(42, "--seed", help="Random seed: the same seed writes the same files."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the local target's clientes landing and lake first."),
) -> None:
    """Write a sample `clientes` landing zone (synthetic Brazilian customers) and run the pipeline on it.

    Runs on the local target only. Rerunning without --fresh writes the same files again, which are
    already ingested, so the pipeline has nothing new to do: that is the exactly-once contract.

    Example:  lh360 demo --rows 20000 --files 20 --fresh
    """
    from lh360.demo.run import run_demo  # pydantic, yaml: off the --help path

    st = state(ctx)
    summary, shown = run_demo(st.lakehouse(), rows=rows, files=files, seed=seed, fresh=fresh)
    if st.out.json:
        st.out.emit({**summary.as_dict(), "demo": shown})
    else:
        render.render_run_summary(st.out, summary)
        render.render_demo_summary(st.out, shown, summary)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


@app.command()
def schema(
    ctx: typer.Context,
    kind: SchemaKind = typer.Argument(..., help="spec: a table spec (configs/tables/*.yaml); config: lh360.yaml."),
) -> None:
    """Print the JSON Schema of a table spec or of lh360.yaml, generated from lh360's models (for editors).

    Example:  lh360 schema spec > .lh360/table-spec.schema.json
    """
    print(json.dumps(json_schema(kind.value), indent=2, ensure_ascii=False))
