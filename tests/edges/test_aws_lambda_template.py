"""The AWS SAM example (examples/aws-lambda/template.yaml) agrees with the handler, and passes cfn-lint.

cfn-lint needs aws-sam-translator for a SAM template, which pins pydantic to one minor version; it is therefore not
in the ``test`` extra. The lint runs when a ``cfn-lint`` executable is found (``$CFN_LINT`` or ``PATH``, e.g. one
installed with pipx or in its own venv), else it is skipped; CI installs it in its own venv.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from segment_bridge import aws_lambda

yaml = pytest.importorskip("yaml")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aws-lambda"
TEMPLATE = EXAMPLE / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !GetAtt, !Sub) as plain ``{tag: value}`` mappings."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return dict(yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader))


def function(template: dict[str, Any]) -> dict[str, Any]:
    (resource,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    return dict(resource["Properties"])


def test_handler_path_names_the_handler(template: dict[str, Any]) -> None:
    module, _, name = function(template)["Handler"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is aws_lambda.handler


def test_event_source_mapping_reports_batch_item_failures(template: dict[str, Any]) -> None:
    (source,) = function(template)["Events"].values()
    assert source["Type"] == "Kinesis"
    properties = source["Properties"]
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    assert properties["MaximumRetryAttempts"] >= 1


def test_environment_uses_only_settings_the_handler_reads(template: dict[str, Any]) -> None:
    documented = set(re.findall(r"``(SEGMENT_[A-Z_]+)``", aws_lambda.__doc__ or ""))
    assert set(function(template)["Environment"]["Variables"]) <= documented


def test_function_timeout_leaves_room_for_the_http_timeout_and_margin(template: dict[str, Any]) -> None:
    props = function(template)
    env = props["Environment"]["Variables"]
    needed = float(env["SEGMENT_BRIDGE_HTTP_TIMEOUT"]) + float(env["SEGMENT_BRIDGE_SAFETY_MARGIN_MS"]) / 1000
    assert props["Timeout"] > 2 * needed


def test_twilio_role_needs_the_external_id(template: dict[str, Any]) -> None:
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    (statement,) = roles[0]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    assert "sts:ExternalId" in statement["Condition"]["StringEquals"]


def test_template_passes_cfn_lint() -> None:
    executable = os.environ.get("CFN_LINT") or shutil.which("cfn-lint")
    if not executable:
        pytest.skip("no cfn-lint executable (set CFN_LINT, or put cfn-lint with aws-sam-translator on PATH)")
    done = subprocess.run([executable, str(TEMPLATE)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
