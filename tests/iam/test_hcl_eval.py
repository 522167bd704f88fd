"""tests/iam/hcl.py renders Terraform expressions the way Terraform would, on small trees: the IAM tests rely on
it to read the policies from the HCL."""

from __future__ import annotations

import json
from textwrap import dedent

import pytest

from tests.iam.hcl import Module, Unknown, Unsupported, has_unknowns

CHILD = """
variable "bucket" {
  type = string
}
variable "layers" {
  type    = list(string)
  default = ["bronze", "gold"]
}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
locals {
  arn      = "arn:aws:s3:::${trim(var.bucket, "/")}"
  prefixes = [for l in var.layers : "${l}/*/_delta_log/*" if l != "gold"]
  account  = data.aws_caller_identity.current.account_id
}
resource "aws_s3_bucket" "this" {
  for_each = { a = "x-a", b = "x-b" }
  bucket   = each.value
}
resource "aws_athena_workgroup" "this" {
  name = "wg"
}
data "aws_iam_policy_document" "this" {
  statement {
    sid       = "Read"
    actions   = ["s3:GetObject"]
    resources = [for p in local.prefixes : "${local.arn}/${p}"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}
output "arns" {
  value = { for k, b in aws_s3_bucket.this : k => b.arn }
}
output "workgroup_arn" {
  value = aws_athena_workgroup.this.arn
}
output "escaped" {
  value = "a \\"quoted\\" $${literal} ${upper("x")}"
}
output "later" {
  value = aws_athena_workgroup.this.state_changed_at
}
"""

ROOT = """
module "child" {
  source = "./child"
  bucket = "/lake/"
}
output "policy" {
  value = module.child.arns
}
"""


@pytest.fixture
def root(tmp_path) -> Module:
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "main.tf").write_text(dedent(CHILD))
    (tmp_path / "main.tf").write_text(dedent(ROOT))
    return Module(tmp_path, {}, "sa-east-1")


def test_module_wiring_locals_for_expressions_and_data_sources(root):
    child = root.child("child")
    assert child.local("arn") == "arn:aws:s3:::lake"
    assert child.local("prefixes") == ["bronze/*/_delta_log/*"]
    policy = child.policy("this")
    assert policy["Statement"] == [
        {
            "Sid": "Read",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::lake/bronze/*/_delta_log/*"],
            "Effect": "Allow",
            "Condition": {"StringEquals": {"aws:SourceAccount": ["123456789012"]}},
        }
    ]
    assert json.loads(json.dumps(policy)) == policy


def test_resources_with_for_each_and_computed_arns(root):
    assert root.output("policy") == {"a": "arn:aws:s3:::x-a", "b": "arn:aws:s3:::x-b"}
    assert root.child("child").output("workgroup_arn") == "arn:aws:athena:sa-east-1:123456789012:workgroup/wg"


def test_string_escapes_and_functions(root):
    assert root.child("child").output("escaped") == 'a "quoted" ${literal} X'


def test_what_only_apply_knows_is_unknown_and_detectable(root):
    later = root.child("child").output("later")
    assert isinstance(later, Unknown)
    assert has_unknowns({"x": str(later)}) == [str(later)]


def test_an_unknown_reference_is_an_error_not_a_guess(root):
    with pytest.raises(Unsupported):
        root.child("child").local("nope")
