"""The `lh360` program's first lines: signals work from the very first moment.

Importing the CLI (typer, click) takes a few hundred milliseconds; a SIGTERM or Ctrl-C that arrives then,
before lh360 has done anything, ends the process at once with 143 / 130 (and, under --json, the one JSON
document saying so) instead of a KeyboardInterrupt traceback or a silent death by signal. Once a command
runs, lh360.signals takes over.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _early(signum: int, frame: object) -> None:
    name = signal.Signals(signum).name
    if "--json" in sys.argv:
        doc = {"ok": False, "exit_code": 128 + signum, "error": f"interrupted by {name}", "kind": "interrupted"}
        os.write(1, (json.dumps(doc) + "\n").encode())
    os.write(2, f"error: interrupted by {name}\n".encode())
    os._exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGINT, _early)
    signal.signal(signal.SIGTERM, _early)
    # imported only now: the CLI's imports take a few hundred milliseconds, and a signal then must find
    # the handlers above already in place
    from lh360.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
