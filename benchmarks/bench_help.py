"""`lh360 --help` must stay fast: whole process <= 3x `python -c "import typer"` (heavy imports are lazy).

python benchmarks/bench_help.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import measure, report  # noqa: E402


def best(cmd: list[str], n: int = 15) -> float:
    return min(measure(cmd)[0] for _ in range(n))


def main() -> None:
    typer_s = best([sys.executable, "-c", "import typer"])
    help_s = best([sys.executable, "-m", "lh360", "--help"])
    cmd_help_s = best([sys.executable, "-m", "lh360", "ingest", "--help"])
    report(
        "help",
        {
            "python_import_typer_s": round(typer_s, 3),
            "lh360_help_s": round(help_s, 3),
            "lh360_ingest_help_s": round(cmd_help_s, 3),
            "ratio": round(help_s / typer_s, 2),
            "target": "ratio <= 3",
        },
    )


if __name__ == "__main__":
    main()
