"""Offline static checks of terraform/ (no providers, no network).

`terraform validate` needs provider plugins, which cannot be downloaded here, so
this file does the part of it that matters most for a tree of modules: every file
parses (python-hcl2), and the wiring between roots and modules is consistent:

* a module call passes no input the module does not declare, and every input the
  module requires (a variable without a default);
* every `var.x`, `local.x`, `module.x` and `module.x.output` reference exists;
* every variable and output has a description;
* a variable or output whose name looks like it holds a secret is `sensitive = true`.

The checker is tested on small broken trees too, so a silent checker cannot pass.
The rest pins repository conventions (file layout, version constraints, backend,
READMEs) and the security properties issue 6 asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent

import pytest

hcl2 = pytest.importorskip("hcl2")
from hcl2.utils import SerializationOptions  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
MODULES = TERRAFORM / "modules"
ENVS = TERRAFORM / "envs"  # the one root of every environment: <env>.tfvars and <env>.s3.tfbackend beside it
ENV_NAMES = ["dev", "prod"]
ROOTS = [ENVS, TERRAFORM / "bootstrap"]
MODULE_NAMES = ["lake_storage", "databricks_access", "glue_athena", "databricks_workspace", "ops_box", "deployer"]

_OPTIONS = SerializationOptions(with_comments=False, strip_string_quotes=True, explicit_blocks=False)

# ---------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------

MODULE_META_ARGUMENTS = frozenset({"source", "version", "providers", "count", "for_each", "depends_on"})
# Keys whose values are prose, not expressions.
_PROSE_KEYS = frozenset({"description", "error_message"})

_VAR_REF = re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)")
_LOCAL_REF = re.compile(r"(?<![\w.])local\.([A-Za-z_][\w-]*)")
_MODULE_REF = re.compile(r"(?<![\w.])module\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?(?:\.([A-Za-z_][\w-]*))?")

# Secret-looking names. A word from _SECRET_WORDS anywhere, or a last word from
# _SECRET_LAST_WORDS, marks a secret - unless the last word says the variable only
# names, locates or configures something (kms_key_arn, secret_name, token_ttl,
# storage_credential_owner, key_rotation_enabled).
_SECRET_WORDS = frozenset(
    {"token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "pwd", "passphrase", "apikey", "pem"}
)
_SECRET_LAST_WORDS = frozenset({"key", "keys", "credential", "credentials", "pat"})
_NOT_A_SECRET_LAST_WORDS = frozenset(
    {
        "arn", "arns", "id", "ids", "name", "names", "alias", "aliases", "prefix", "path", "paths", "uri", "url",
        "owner", "enabled", "enable", "days", "hours", "seconds", "ttl", "length", "type", "version", "rotation",
        "policy", "count", "window",
    }
)  # fmt: skip


def looks_secret(name: str) -> bool:
    """True when a variable or output name suggests it holds a secret value."""
    words = [w for w in re.split(r"[_\-]+", name.lower()) if w]
    if not words or words[-1] in _NOT_A_SECRET_LAST_WORDS:
        return False
    return any(w in _SECRET_WORDS for w in words) or words[-1] in _SECRET_LAST_WORDS


def parse_hcl(text: str) -> dict:
    return hcl2.loads(text, serialization_options=_OPTIONS)


@dataclass
class TfDir:
    """The declarations of one Terraform directory (a root or a module)."""

    path: Path
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    locals: set[str] = field(default_factory=set)
    blocks: list[tuple[str, str, object]] = field(default_factory=list)  # (file, block type, body) of everything
    problems: list[str] = field(default_factory=list)


def load_dir(path: Path) -> TfDir:
    tf = TfDir(path)
    for file in sorted(path.glob("*.tf")):
        try:
            parsed = parse_hcl(file.read_text())
        except Exception as exc:  # noqa: BLE001 - report any parser error as a problem
            tf.problems.append(f"{_rel(file)}: does not parse: {exc}")
            continue
        for block_type, entries in parsed.items():
            for entry in entries:
                tf.blocks.append((file.name, block_type, entry))
                if block_type in ("variable", "output", "module"):
                    target = {"variable": tf.variables, "output": tf.outputs, "module": tf.modules}[block_type]
                    for name, body in entry.items():
                        if name in target:
                            tf.problems.append(f"{_rel(path)}: {block_type} {name!r} is declared twice")
                        target[name] = body if isinstance(body, dict) else {}
                elif block_type == "locals":
                    tf.locals.update(entry)
    return tf


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _strings(value, key: str | None = None):
    """Every expression string inside a parsed value, skipping prose attributes."""
    if key in _PROSE_KEYS:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _local_source(body: dict) -> str | None:
    source = body.get("source")
    if isinstance(source, str) and source.startswith(("./", "../")):
        return source
    return None


def check_dir(path: Path) -> list[str]:
    """Problems of one directory and of its calls into local modules."""
    tf = load_dir(path)
    where = _rel(path)
    problems = list(tf.problems)

    for kind, decls in (("variable", tf.variables), ("output", tf.outputs)):
        for name, body in decls.items():
            description = body.get("description")
            if not isinstance(description, str) or not description.strip():
                problems.append(f"{where}: {kind} {name!r} has no description")
            if looks_secret(name) and body.get("sensitive") is not True:
                problems.append(f"{where}: {kind} {name!r} looks like a secret but is not sensitive = true")

    children: dict[str, TfDir] = {}
    for name, body in tf.modules.items():
        source = _local_source(body)
        if source is None:
            continue  # a registry or git module: its interface is not in this repository
        child_path = (path / source).resolve()
        if not child_path.is_dir():
            problems.append(f"{where}: module {name!r} source {source!r} is not a directory")
            continue
        child = load_dir(child_path)
        children[name] = child
        inputs = set(body) - MODULE_META_ARGUMENTS
        for unknown in sorted(inputs - set(child.variables)):
            problems.append(f"{where}: module {name!r} passes unknown input {unknown!r} (not a variable of {source})")
        required = {v for v, decl in child.variables.items() if "default" not in decl}
        for missing in sorted(required - inputs):
            problems.append(f"{where}: module {name!r} does not pass required input {missing!r} of {source}")

    for file, block_type, entry in tf.blocks:
        for text in _strings(entry):
            for ref in _VAR_REF.findall(text):
                if ref not in tf.variables:
                    problems.append(f"{where}/{file}: {block_type} refers to undeclared var.{ref}")
            for ref in _LOCAL_REF.findall(text):
                if ref not in tf.locals:
                    problems.append(f"{where}/{file}: {block_type} refers to undeclared local.{ref}")
            for module, output in _MODULE_REF.findall(text):
                if module not in tf.modules:
                    problems.append(f"{where}/{file}: {block_type} refers to undeclared module.{module}")
                elif output and module in children and output not in children[module].outputs:
                    problems.append(
                        f"{where}/{file}: {block_type} refers to module.{module}.{output}, "
                        f"which {_local_source(tf.modules[module])} does not output"
                    )
    return sorted(set(problems))


def check_tree(root: Path) -> list[str]:
    """check_dir on a root and, recursively, on every local module it calls."""
    problems: list[str] = []
    seen: set[Path] = set()
    pending = [root.resolve()]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        problems += check_dir(path)
        for body in load_dir(path).modules.values():
            source = _local_source(body)
            if source and (path / source).is_dir():
                pending.append((path / source).resolve())
    return problems


# ---------------------------------------------------------------------------
# The checker, on small broken trees
# ---------------------------------------------------------------------------

CHILD_MODULE = """
variable "bucket" {
  description = "Bucket name."
  type        = string
}

variable "retention_days" {
  description = "Retention."
  type        = number
  default     = 30
}

output "bucket_arn" {
  description = "Bucket ARN."
  value       = "arn:aws:s3:::${var.bucket}"
}
"""

CLEAN_ROOT = """
variable "prefix" {
  description = "Name prefix."
  type        = string
}

variable "databricks_token" {
  description = "A PAT, for the test only."
  type        = string
  sensitive   = true
}

variable "kms_key_arn" {
  description = "A key ARN is not a secret."
  type        = string
  default     = null
}

locals {
  name = "${var.prefix}-landing"
}

module "storage" {
  source = "../child"

  bucket = local.name
}

module "copies" {
  source   = "../child"
  for_each = toset(["a", "b"])

  bucket         = "${var.prefix}-${each.key}"
  retention_days = 7
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = module.storage.bucket_arn
}

output "copy_arn" {
  description = "ARN of copy a."
  value       = module.copies["a"].bucket_arn
  depends_on  = [module.storage]
}
"""

# (what to change in CLEAN_ROOT, the problem the checker must report)
BROKEN_ROOTS = {
    "unknown module input": (
        ("  bucket = local.name\n", '  bucket = local.name\n  colour = "red"\n'),
        "module 'storage' passes unknown input 'colour'",
    ),
    "missing required input": (
        ("  bucket = local.name\n", ""),
        "module 'storage' does not pass required input 'bucket'",
    ),
    "undeclared variable": (
        ('"${var.prefix}-landing"', '"${var.perfix}-landing"'),
        "refers to undeclared var.perfix",
    ),
    "undeclared module output": (
        ("value       = module.storage.bucket_arn", "value       = module.storage.bucket_id"),
        "refers to module.storage.bucket_id, which ../child does not output",
    ),
    "undeclared module output behind an index": (
        ('module.copies["a"].bucket_arn', 'module.copies["a"].arn'),
        "refers to module.copies.arn, which ../child does not output",
    ),
    "undeclared module": (
        ("value       = module.storage.bucket_arn", "value       = module.store.bucket_arn"),
        "refers to undeclared module.store",
    ),
    "undeclared module in depends_on": (
        ("depends_on  = [module.storage]", "depends_on  = [module.storge]"),
        "refers to undeclared module.storge",
    ),
    "undeclared local": (
        ("bucket = local.name", "bucket = local.nmae"),
        "refers to undeclared local.nmae",
    ),
    "variable without description": (
        ('  description = "Name prefix."\n', ""),
        "variable 'prefix' has no description",
    ),
    "output without description": (
        ('  description = "ARN of the bucket."\n', ""),
        "output 'bucket_arn' has no description",
    ),
    "secret variable not sensitive": (
        ("  sensitive   = true\n", ""),
        "variable 'databricks_token' looks like a secret but is not sensitive = true",
    ),
    "module source that does not exist": (
        ('source = "../child"\n\n  bucket = local.name', 'source = "../chidl"\n\n  bucket = local.name'),
        "module 'storage' source '../chidl' is not a directory",
    ),
    "file that does not parse": (
        ("locals {", "locals {{"),
        "does not parse",
    ),
}


def _write_tree(tmp_path: Path, root_text: str) -> Path:
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "main.tf").write_text(dedent(CHILD_MODULE))
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "main.tf").write_text(dedent(root_text))
    return tmp_path / "root"


def test_checker_passes_a_clean_tree(tmp_path):
    assert check_tree(_write_tree(tmp_path, CLEAN_ROOT)) == []


@pytest.mark.parametrize("case", sorted(BROKEN_ROOTS))
def test_checker_catches_a_broken_tree(tmp_path, case):
    (old, new), expected = BROKEN_ROOTS[case]
    assert CLEAN_ROOT.count(old) == 1, f"fixture edit for {case!r} must match exactly once"
    problems = check_tree(_write_tree(tmp_path, CLEAN_ROOT.replace(old, new)))
    assert any(expected in p for p in problems), problems


def test_checker_catches_a_broken_child_module(tmp_path):
    root = _write_tree(tmp_path, CLEAN_ROOT)
    child = tmp_path / "child" / "main.tf"
    child.write_text(child.read_text().replace("${var.bucket}", "${var.bucket_name}"))
    problems = check_tree(root)
    assert any("child/main.tf: output refers to undeclared var.bucket_name" in p for p in problems), problems


@pytest.mark.parametrize(
    "name",
    [
        "databricks_token", "client_secret", "db_password", "aws_secret_access_key", "ssh_private_key",
        "api_key", "tls_private_key_pem", "github_pat", "databricks_credentials", "secret",
    ],
)  # fmt: skip
def test_secret_looking_names(name):
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    [
        "kms_key_arn", "kms_key_id", "kms_alias_name", "secret_name", "secret_arn", "token_ttl",
        "key_rotation_enabled", "storage_credential_name", "storage_credential_owner", "databricks_account_id",
        "kms_deletion_window_in_days", "landing_prefix", "tags", "unity_catalog_external_id",
    ],
)  # fmt: skip
def test_names_that_only_point_at_secrets_are_not_secrets(name):
    assert not looks_secret(name)


# ---------------------------------------------------------------------------
# The repository's Terraform
# ---------------------------------------------------------------------------

TF_FILES = sorted(TERRAFORM.rglob("*.tf"))
TFVARS_FILES = sorted(TERRAFORM.rglob("*.tfvars"))


def test_there_is_terraform_to_check():
    assert len(TF_FILES) >= 25
    assert {p.name for p in MODULES.iterdir() if p.is_dir()} == set(MODULE_NAMES)


@pytest.mark.parametrize("path", TF_FILES + TFVARS_FILES, ids=lambda p: _rel(p))
def test_every_file_parses(path):
    assert isinstance(parse_hcl(path.read_text()), dict)


@pytest.mark.parametrize(
    "path", ROOTS + [MODULES / m for m in MODULE_NAMES], ids=lambda p: _rel(p).removeprefix("terraform/")
)
def test_wiring_is_consistent(path):
    assert check_tree(path) == []


TFVARS = [ENVS / f"{env}.tfvars" for env in ENV_NAMES] + [TERRAFORM / "bootstrap" / "terraform.tfvars"]


@pytest.mark.parametrize("tfvars", TFVARS, ids=lambda p: _rel(p))
def test_tfvars_set_declared_variables_and_every_required_one(tfvars):
    declared = load_dir(tfvars.parent).variables
    values = parse_hcl(tfvars.read_text())
    assert sorted(set(values) - set(declared)) == []
    required = {name for name, body in declared.items() if "default" not in body}
    assert sorted(required - set(values)) == []


def test_one_root_serves_every_environment():
    """dev and prod are one root applied with different variable and backend files, not two copies."""
    assert not [p for p in ENVS.rglob("*.tf") if p.parent != ENVS], "no per-environment copies of the root"
    for env in ENV_NAMES:
        assert (ENVS / f"{env}.tfvars").is_file() and (ENVS / f"{env}.s3.tfbackend").is_file()
    values = {env: parse_hcl((ENVS / f"{env}.tfvars").read_text()) for env in ENV_NAMES}
    assert {v["environment"] for v in values.values()} == set(ENV_NAMES)
    for key in ("name_prefix", "glue_database_prefix", "athena_workgroup_name", "catalog_name"):
        assert len({v[key] for v in values.values()}) == len(ENV_NAMES), f"{key} must differ per environment"


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_module_layout(module):
    path = MODULES / module
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (path / name).is_file(), f"{module} has no {name}"
    # terraform-aws-modules style: the module's main resource is called "this".
    resources = [entry for _, kind, entry in load_dir(path).blocks if kind == "resource"]
    names = {name for entry in resources for bodies in entry.values() for name in bodies}
    assert "this" in names, f"{module} has no resource named 'this'"


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_module_readme_lists_every_input_and_output(module):
    tf = load_dir(MODULES / module)
    readme = (MODULES / module / "README.md").read_text()
    for name in list(tf.variables) + list(tf.outputs):
        assert f"`{name}`" in readme, f"{module}/README.md does not mention `{name}`"


def _terraform_settings(path: Path) -> dict:
    return parse_hcl((path / "versions.tf").read_text())["terraform"][0]


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_modules_set_minimum_versions_only(module):
    settings = _terraform_settings(MODULES / module)
    assert settings["required_version"].startswith(">=")
    for provider in settings["required_providers"][0].values():
        assert re.fullmatch(r">= ?\d+\.\d+(\.\d+)?", provider["version"]), provider
    assert "backend" not in settings


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: _rel(p))
def test_roots_pin_versions(root):
    settings = _terraform_settings(root)
    assert settings["required_version"].startswith("~>")
    for provider in settings["required_providers"][0].values():
        assert provider["version"].startswith("~>"), provider


def _backend(env: str) -> dict:
    """The S3 backend settings `terraform init -backend-config=<env>.s3.tfbackend` ends up with."""
    shared = _terraform_settings(ENVS)["backend"][0]["s3"]
    return {**shared, **parse_hcl((ENVS / f"{env}.s3.tfbackend").read_text())}


@pytest.mark.parametrize("env", ENV_NAMES)
def test_envs_keep_state_in_s3_with_native_locking(env):
    backend = _backend(env)
    assert backend["use_lockfile"] is True
    assert backend["encrypt"] is True
    assert backend["region"] == "sa-east-1"
    assert backend["key"] == f"lh360/{env}/terraform.tfstate"
    assert "dynamodb_table" not in backend


@pytest.mark.parametrize("env", ENV_NAMES)
def test_state_is_encrypted_with_the_bootstrap_key(env):
    """`encrypt = true` alone makes the backend ask for SSE-S3 (AES256), overriding the bucket's KMS default:
    the backend must name the bootstrap's key, and the bootstrap must say so in the settings it prints."""
    alias = _resources_of(TERRAFORM / "bootstrap")[("aws_kms_alias", "this")]["name"]
    assert _backend(env).get("kms_key_id") == alias
    outputs = load_dir(TERRAFORM / "bootstrap").outputs
    assert "kms_key_id" in str(outputs["backend_config"]["value"])


def test_envs_export_every_output_lh360_init_reads():
    tf_outputs = pytest.importorskip("lh360.tf_outputs")
    outputs = load_dir(ENVS).outputs
    for name in tf_outputs.REQUIRED_OUTPUTS + tf_outputs.OPTIONAL_OUTPUTS:
        assert name in outputs
        assert outputs[name].get("sensitive") is not True


@pytest.mark.parametrize("env", ENV_NAMES)
def test_envs_run_in_sa_east_1(env):
    variables = load_dir(ENVS).variables
    assert variables["aws_region"]["default"] == "sa-east-1"
    assert parse_hcl((ENVS / f"{env}.tfvars").read_text())["aws_region"] == "sa-east-1"


_SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+)(.*)")


def test_every_checkov_skip_carries_a_reason():
    skips = []
    for path in TF_FILES:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for check_id, rest in _SKIP_COMMENT.findall(line):
                reason = rest.lstrip(" :").strip()
                skips.append(check_id)
                assert line.lstrip().startswith("# checkov:skip="), f"{_rel(path)}:{lineno}"
                assert rest.startswith(":") and len(reason) >= 20, f"{_rel(path)}:{lineno}: {check_id} has no reason"
    assert skips, "expected the documented skips in lake_storage and bootstrap"


# ---------------------------------------------------------------------------
# What issue 6 asks of the modules, pinned
# ---------------------------------------------------------------------------


def _text(module: str, file: str = "main.tf") -> str:
    return (MODULES / module / file).read_text()


def _resources(module: str) -> dict[tuple[str, str], dict]:
    return _resources_of(MODULES / module)


def _resources_of(path: Path) -> dict[tuple[str, str], dict]:
    found = {}
    for _, kind, entry in load_dir(path).blocks:
        if kind == "resource":
            for rtype, bodies in entry.items():
                for name, body in bodies.items():
                    found[(rtype, name)] = body
    return found


def test_lake_storage_protects_every_bucket():
    res = _resources("lake_storage")
    for name in ("this", "logs"):
        block = res[("aws_s3_bucket_public_access_block", name)]
        assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls"))
        assert block["restrict_public_buckets"] is True
        assert "DenyInsecureTransport" in str(res[("aws_s3_bucket_policy", name)]["policy"])
        assert "aws:SecureTransport" in str(res[("aws_s3_bucket_policy", name)]["policy"])
        assert ("aws_s3_bucket_logging", "this") in res
    sse = res[("aws_s3_bucket_server_side_encryption_configuration", "this")]["rule"][0]
    assert sse["bucket_key_enabled"] is True
    assert sse["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    assert "aws_kms_key.this.arn" in sse["apply_server_side_encryption_by_default"][0]["kms_master_key_id"]
    assert res[("aws_kms_key", "this")]["enable_key_rotation"] is True
    lifecycle = str(res[("aws_s3_bucket_lifecycle_configuration", "this")])
    assert "abort_incomplete_multipart_upload" in lifecycle
    assert "var.landing_retention_days" in _text("lake_storage")


def test_lake_storage_versions_landing_but_not_the_delta_lake():
    locals_ = next(entry for _, kind, entry in load_dir(MODULES / "lake_storage").blocks if kind == "locals")
    buckets = locals_["buckets"]
    assert buckets["landing"]["versioning"] is True
    assert buckets["lake"]["versioning"] is False


def test_unity_catalog_role_trusts_the_master_role_with_the_external_id_and_itself():
    access = load_dir(MODULES / "databricks_access")
    assert (
        access.variables["unity_catalog_master_role_arn"]["default"]
        == "arn:aws:iam::414351767826:role/unity-catalog-prod-UCMasterRole-14S5ZJVKOTYTL"
    )
    text = _text("databricks_access")
    trust = text[text.index('data "aws_iam_policy_document" "unity_catalog_trust"') :]
    trust = trust[: trust.index('data "aws_iam_policy_document" "unity_catalog_access"')]
    assert trust.count('variable = "sts:ExternalId"') == 2
    assert "databricks_storage_credential.this.aws_iam_role[0].external_id" in text
    assert 'variable = "aws:PrincipalArn"' in trust and "local.uc_role_arn" in trust
    assert "role_arn = local.uc_role_arn" in text


def test_glue_athena_workgroup_settings():
    workgroup = _resources("glue_athena")[("aws_athena_workgroup", "this")]
    config = workgroup["configuration"][0]
    assert config["enforce_workgroup_configuration"] is True
    assert config["engine_version"][0]["selected_engine_version"] == "Athena engine version 3"
    assert "var.bytes_scanned_cutoff_per_query" in config["bytes_scanned_cutoff_per_query"]
    encryption = config["result_configuration"][0]["encryption_configuration"][0]
    assert encryption["encryption_option"] == "SSE_KMS"
    locals_ = next(entry for _, kind, entry in load_dir(MODULES / "glue_athena").blocks if kind == "locals")
    assert set(locals_["databases"]) == {"bronze", "silver", "gold", "ledger"}


def test_databricks_workspace_warehouse_and_schemas():
    res = _resources("databricks_workspace")
    warehouse = res[("databricks_sql_endpoint", "this")]
    assert warehouse["enable_serverless_compute"] is True
    assert "var.warehouse_auto_stop_mins" in warehouse["auto_stop_mins"]
    locals_ = next(entry for _, kind, entry in load_dir(MODULES / "databricks_workspace").blocks if kind == "locals")
    assert set(locals_["schemas"]) == {"bronze", "silver", "gold"}
    assert locals_["landing_location"]["landing"]["read_only"] is True
    assert "var.lake_locations" in str(locals_["lake_locations"])
    assert "ALL_PRIVILEGES" not in _text("databricks_workspace")


def test_ops_box_can_do_only_what_lh360_needs():
    text = _text("ops_box")
    actions = set(re.findall(r'"((?:s3|athena|glue|kms):[A-Za-z*]+)"', text))
    assert not {a for a in actions if "*" in a}, "no wildcard actions"
    assert {a.split(":")[0] for a in actions} == {"s3", "athena", "glue", "kms"}
    glue_writes = {a for a in actions if a.startswith("glue:") and not a.startswith(("glue:Get", "glue:BatchGet"))}
    assert glue_writes == set()
    assert "resources = [var.athena_workgroup_arn]" in text
    assert '"${var.lake_bucket_arn}/${local.ledger_prefix}/*"' in text
