"""Docs commands: `lh360 docs build` and `lh360 docs serve` (the site itself is lh360.site)."""

from __future__ import annotations

from pathlib import Path

import typer

from lh360.cli import AppState, app, render, state
from lh360.durations import parse_duration
from lh360.errors import UsageError

docs_app = typer.Typer(
    help="A static site about the lakehouse: lineage, tables, checks and runs.\n\nExample:  lh360 docs build --out site",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(docs_app, name="docs")

SINCE = typer.Option(
    "30d", "--since", metavar="DURATION", help="How much run and check history the site shows (e.g. 7d, 90d)."
)


def _since_seconds(text: str) -> float:
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    if seconds <= 0:
        raise UsageError("--since: must be more than 0 seconds")
    return seconds


@docs_app.command("build")
def build(
    ctx: typer.Context,
    out: Path = typer.Option(Path("site"), "--out", "-o", help="The folder to write the site into."),
    since: str = SINCE,
) -> None:
    """Write a self-contained static site (opens from file://, fetches nothing): the lineage graph with each
    table's freshness and last run, a page per table (schema, rows and version per layer, silver columns and
    expectations, landing SLA, quarantine by rule, check history charts, run timelines).

    Reads the target's Delta logs and ledgers the way `tables` and `history` do: `-t prod` builds prod's site.

    Example:  lh360 docs build --out site   |   lh360 -t prod docs build --out /var/www/lh360 --since 7d
    """
    from lh360.site import build_site  # pydantic, yaml: off the --help path

    st = state(ctx)
    result = build_site(st.lakehouse(), out, since_s=_since_seconds(since))
    if st.out.json:
        st.out.emit(result.as_dict())
        return
    render.render_site_build(st.out, result)


@docs_app.command("serve")
def serve(
    ctx: typer.Context,
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="The port on 127.0.0.1 (0: any free)."),
    out: Path = typer.Option(None, "--out", "-o", help="Where to build the site (default: a temporary folder)."),
    since: str = SINCE,
) -> None:
    """Serve the site on 127.0.0.1 and rebuild it whenever a page is loaded (specs and ledgers are read
    again, so a reload shows the last run). Ctrl-C stops it (exit 130).

    Example:  lh360 docs serve --port 8080
    """

    import tempfile  # tempfile and random: off the --help path

    from lh360.site import build_site  # pydantic, yaml: off the --help path
    from lh360.site.serve import SiteServer  # pydantic, yaml: off the --help path

    st = state(ctx)
    since_s = _since_seconds(since)
    folder = out or Path(tempfile.mkdtemp(prefix="lh360-docs-"))

    def rebuild():
        # a fresh state per build: the specs and config are read again, as a new command would
        return build_site(AppState(config=st.config, target=st.target, out=st.out).lakehouse(), folder, since_s=since_s)

    rebuild()  # a broken config fails here, with its exit code, before anything listens
    server = SiteServer(folder, rebuild, port=port, built=True)
    render.say(st.out, f"serving {folder} on {server.url} (rebuilt on every page load; Ctrl-C stops)")
    try:
        server.serve_forever()  # until Ctrl-C or SIGTERM: exit 130 / 143, as for every command
    finally:
        server.shutdown()
