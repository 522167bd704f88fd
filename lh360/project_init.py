"""`lh360 init`: scaffold configs/ from the packaged example, optionally with a target from Terraform."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from lh360.errors import ConfigError, UsageError
from lh360.schemas import json_schema
from lh360.tf_outputs import target_from_terraform_outputs


def _template_files() -> dict[str, bytes]:
    root = resources.files("lh360") / "templates"
    out = {}

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, rel + "/")
            elif not child.name.startswith("."):
                out[rel] = child.read_bytes()

    walk(root, "")
    return out


# JSON Schemas for editors, generated from the models; the templates' first line points at them
SCHEMA_FILES = {"spec": "configs/.schemas/table-spec.json", "config": "configs/.schemas/lh360-config.json"}


def schema_files() -> dict[str, bytes]:
    return {rel: (json.dumps(json_schema(kind), indent=2) + "\n").encode() for kind, rel in SCHEMA_FILES.items()}


def init_project(directory: Path, *, force: bool = False, from_terraform: Path | None = None) -> list[Path]:
    """Write the example configs/ (existing files are kept unless `force`) and the JSON Schemas the templates
    point editors at (always brought up to date: they describe this lh360)."""
    directory = Path(directory)
    written: list[Path] = []
    for rel, data in schema_files().items():
        dest = directory / rel
        if not dest.exists() or dest.read_bytes() != data:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            written.append(dest)
    files = _template_files()
    if from_terraform is not None:
        files["configs/lh360.yaml"] = _config_with_terraform_target(
            files["configs/lh360.yaml"].decode(), from_terraform
        ).encode()
    for rel, data in sorted(files.items()):
        dest = directory / rel
        if dest.exists() and not force:
            if rel == "configs/lh360.yaml" and from_terraform is not None:
                raise UsageError(f"{dest} exists: pass --force to rewrite it with the Terraform target")
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        written.append(dest)
    return written


def _config_with_terraform_target(template: str, outputs_path: Path) -> str:
    import yaml

    try:
        outputs = json.loads(Path(outputs_path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{outputs_path}: no such file") from None
    except ValueError as exc:
        raise ConfigError(f"not the JSON of `terraform output -json`: {exc}", file=str(outputs_path)) from None
    try:
        target = target_from_terraform_outputs(outputs)
    except ValueError as exc:
        raise ConfigError(str(exc), file=str(outputs_path)) from None
    head, sep, _ = template.partition("  prod:\n")
    if not sep:
        raise ConfigError("template has no prod target", file="lh360/templates/configs/lh360.yaml")
    body = yaml.safe_dump({"prod": target}, sort_keys=False, default_flow_style=False)
    body = "".join(f"  {line}\n" for line in body.splitlines())
    return head + "  # written by `lh360 init --from-terraform` from `terraform output -json`\n" + body
