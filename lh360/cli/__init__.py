"""The `lh360` command line: thin typer commands over one `Lakehouse` context, and the one error boundary.

Each command module registers its commands on `app`. `run(argv)` parses, runs the command and turns lh360's
exceptions into the stable exit codes of lh360.errors, printing one line (never a traceback unless
--verbose), or one JSON document under --json. `main()` is `run()` then `os._exit`: see there why.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

import typer

from lh360 import __version__, signals
from lh360.cli._output import Output, setup_logging
from lh360.cli._stderr import NativeNoise
from lh360.cli.options import LogFormat
from lh360.engines.base import EngineOptions
from lh360.errors import ConfigError, Interrupted, LH360Error, first_line

try:
    from typer._click import ClickException
except ImportError:  # pragma: no cover - older typer
    from click import ClickException  # type: ignore[assignment]

if TYPE_CHECKING:
    from lh360.config import Project, ResolvedTarget
    from lh360.context import Lakehouse

TARGET_ENV = "LH360_TARGET"
CONFIG_ENV = "LH360_CONFIG"

app = typer.Typer(
    name="lh360",
    help=(
        "Lakehouse360: run a medallion lakehouse (landing → bronze → silver → gold) from YAML table specs, "
        "on the embedded local engine or on Databricks.\n\n"
        "Example:  lh360 demo   |   lh360 run --all   |   lh360 -t prod ingest clientes"
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)


@dataclass
class AppState:
    """What the global options set; commands reach it through `state(ctx)` and build their context from it."""

    config: str | None = None
    target: str | None = None
    out: Output = field(default_factory=Output)
    _project: Any = None

    def project(self) -> Project:
        if self._project is None:
            from lh360.config import load_project  # pydantic, yaml: off the --help path

            self._project = load_project(self.config)
        return self._project

    def resolved_target(self) -> ResolvedTarget:
        return self.project().target(self.target)

    def lakehouse(self, options: EngineOptions | None = None, *, wait_lock: float = 0.0) -> Lakehouse:
        """The command's one context: project, target, engine (with the command's options) and console."""
        from lh360.cli.console import CliConsole  # the renderers: off the --help path
        from lh360.context import Lakehouse  # pydantic, sqlglot: off the --help path

        return Lakehouse(
            self.project(),
            self.resolved_target(),
            options=options or EngineOptions(),
            console=CliConsole(self.out),
            wait_lock=wait_lock,
        )


def state(ctx: typer.Context) -> AppState:
    return ctx.find_root().obj


def _version(value: bool) -> None:
    if value:
        print(f"lh360 {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    target: str = typer.Option(
        None, "--target", "-t", envvar=TARGET_ENV, help="Target name (default: the config's default_target)."
    ),
    config: str = typer.Option(
        None, "--config", envvar=CONFIG_ENV, help="Path to lh360.yaml (default: configs/lh360.yaml found upward)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one machine-readable JSON document on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logs and full tracebacks."),
    log_format: LogFormat = typer.Option(LogFormat.text, "--log-format", help="Logs on stderr as text or json."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    out = Output(json=json_out, quiet=quiet, verbose=verbose, log_format=log_format.value)
    setup_logging(log_format.value, verbose, quiet)
    ctx.obj = AppState(config=config, target=target, out=out)


# Global options may be written after the command too (`lh360 ingest clientes --json`), as cron users do:
# they are moved in front of the command before parsing, so every command accepts them.
_GLOBAL_FLAGS = {"--json", "--quiet", "-q", "--verbose", "-v"}
_GLOBAL_VALUED = {"--target", "-t", "--config", "--log-format"}


def _hoist_globals(argv: list[str]) -> list[str]:
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        if arg in _GLOBAL_FLAGS:
            front.append(arg)
        elif name in _GLOBAL_VALUED and "=" in arg:
            front.append(arg)
        elif arg in _GLOBAL_VALUED and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


COMMAND_MODULES = (
    "cmd_ingest",
    "cmd_project",
    "cmd_pipeline",
    "cmd_maintain",
    "cmd_quarantine",
    "cmd_databricks",
    "cmd_docs",
    "cmd_forget",
)


def _register() -> None:
    # each module adds its commands to `app`; their order is the order of `lh360 --help`
    for name in COMMAND_MODULES:
        import_module(f"lh360.cli.{name}")


def run(argv: list[str] | None = None) -> int:
    """Run one command line; return its exit code (tests call this in process). The one error boundary:
    every outcome is an exit code and one line on stderr (one JSON document on stdout under --json)."""
    args = _hoist_globals(list(sys.argv[1:] if argv is None else argv))
    verbose = "--verbose" in args or "-v" in args
    json_mode = "--json" in args
    out = Output(json=json_mode, verbose=verbose)
    with signals.handled():
        return _run(args, out, verbose, json_mode)


def _run(args: list[str], out: Output, verbose: bool, json_mode: bool) -> int:
    click_exc, exit_exc, abort_exc = _click_exceptions()
    code = 0
    try:
        _register()
        result = app(args=args, prog_name="lh360", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except Interrupted as exc:
        code = _interrupted(out, exc.signum, verbose, json_mode, exc)
    except BaseException as exc:  # noqa: BLE001 - the boundary: every outcome becomes an exit code
        received = signals.received()
        if received is not None:  # a signal surfaced as another error (DuckDB: "Query interrupted")
            code = _interrupted(out, received, verbose, json_mode, exc)
        elif isinstance(exc, LH360Error):
            code = exc.exit_code
            kind = "config" if isinstance(exc, ConfigError) else type(exc).__name__
            _report(out, exc, code, verbose, json_mode, kind=kind)
        elif isinstance(exc, exit_exc):
            code = exc.exit_code
        elif isinstance(exc, abort_exc) and isinstance(exc.__cause__, EOFError):
            # click turns EOFError into Abort; from lh360 it means data ended early (a truncated file)
            code = 3
            _report(out, exc.__cause__, code, verbose, json_mode, kind="internal", prefix="unexpected end of data")
        elif isinstance(exc, (abort_exc, KeyboardInterrupt)):
            code = _interrupted(out, signal.SIGINT, verbose, json_mode, exc)
        elif isinstance(exc, click_exc):
            code = 2
            if json_mode:
                out.emit({"ok": False, "exit_code": 2, "error": exc.format_message(), "kind": "usage"})
            exc.show(file=sys.stderr)
        elif isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        else:  # a bug, or a native library's panic (pyo3's PanicException is a BaseException): one line, exit 3
            code = 3
            native = type(exc).__name__ == "PanicException"
            _report(out, exc, code, verbose, json_mode, kind="native panic" if native else "internal")
    received = signals.received()
    if received is not None and code not in (130, 143):
        # the command finished although a signal arrived (some code swallowed it): never exit 0 or 3 for one
        code = _interrupted(out, received, verbose, json_mode, None, emit=code == 0)
    _flush()
    return code


def _interrupted(
    out: Output, signum: int, verbose: bool, json_mode: bool, exc: BaseException | None, *, emit: bool = True
) -> int:
    name = signal.Signals(signum).name
    if json_mode and emit:
        out.emit(
            {"ok": False, "exit_code": 128 + int(signum), "error": f"interrupted by {name}", "kind": "interrupted"}
        )
    if verbose and exc is not None:
        traceback.print_exception(exc, file=sys.stderr)
    out.error(f"interrupted by {name}")
    return 128 + int(signum)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    noise = None if ("--verbose" in args or "-v" in args) else NativeNoise(quiet="--quiet" in args or "-q" in args)
    if noise is not None:
        noise.start()
    try:
        code = run(argv)
    finally:
        if noise is not None:
            noise.stop()
    # os._exit skips interpreter teardown, where delta-rs' native runtime has been seen to abort the process
    # (exit 134, "terminate called without an active exception") after reading tables with
    # to_pyarrow_table(); everything lh360 owns is flushed and closed by now.
    os._exit(code)


def _click_exceptions() -> tuple[Any, Any, Any]:
    """(usage error, exit, abort) classes: typer >= 0.20 carries its own click, older ones use click."""
    return ClickException, typer.Exit, typer.Abort


def _report(
    out: Output, exc: BaseException, code: int, verbose: bool, json_mode: bool, kind: str, prefix: str | None = None
) -> None:
    # an engine's error may quote a value: never print personal data (pii and sql: off the --help path)
    from lh360.pii import redact

    message = redact(getattr(exc, "message", None) or first_line(exc) or type(exc).__name__) or ""
    if prefix:
        message = f"{prefix}: {message}"
    elif kind in ("internal", "native panic"):
        message = f"{type(exc).__name__}: {first_line(message)} (run with --verbose for the traceback)"
    if json_mode:
        doc: dict[str, Any] = {"ok": False, "exit_code": code, "error": message, "kind": kind}
        for attr in ("file", "line", "field"):
            if getattr(exc, attr, None) is not None:
                doc[attr] = getattr(exc, attr)
        out.emit(doc)
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    out.error(message, redact(getattr(exc, "detail", None)))
