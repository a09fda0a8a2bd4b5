"""The edge store's wiring, from the samtranslator output: one KeyValueStore, associated with every
function that reads it, the output the operator CLI reads, and a writer policy limited to that store.

(The viewer-response rule that shared this file retired with issue 13: CloudFront runs no
viewer-response function on a status of 400 or more, so the fleet ingress and the denial page set
the tenant's ``frame-ancestors`` and keep ``__Host-mp_*`` cookies out themselves; the e2e suite
checks both through the local CloudFront, ``tests/e2e/test_edge_response.py``.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from preview_tokens.operator.operator_cli import _OUTPUT_ENV

from tests.support.template import Template, cloudformation, sam_template

# ----------------------------------------------------------------------------------- wiring


@pytest.fixture(scope="module")
def resources() -> Mapping[str, Any]:
    resources: Mapping[str, Any] = cloudformation()["Resources"]
    return resources


def test_one_key_value_store_deployed_with_every_stack(resources: Mapping[str, Any]) -> None:
    stores = [name for name, r in resources.items() if r["Type"] == "AWS::CloudFront::KeyValueStore"]

    assert stores == ["PreviewEdgeStore"]
    store = resources["PreviewEdgeStore"]
    assert "Condition" not in store, "the operator CLI writes keys to it whether or not CloudFront is on"
    assert "ImportSource" not in store["Properties"], "no key ever travels through CloudFormation"


def test_every_function_that_reads_the_store_is_associated_with_it(resources: Mapping[str, Any]) -> None:
    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::CloudFront::Function"}
    readers = {
        name for name, r in functions.items() if "cf.kvs(" in json.dumps(r["Properties"]["FunctionCode"])
    }

    assert "PreviewEdge" in readers
    for name in readers:
        config = functions[name]["Properties"]["FunctionConfig"]
        assert config["Runtime"] == "cloudfront-js-2.0"
        assert config["KeyValueStoreAssociations"] == [
            {"KeyValueStoreARN": {"Fn::GetAtt": ["PreviewEdgeStore", "Arn"]}}
        ]


def test_the_operator_cli_finds_the_store_in_the_stacks_outputs(template: Template) -> None:
    outputs = template["Outputs"]

    assert outputs["PreviewEdgeStoreArn"]["Value"] == {"Fn::GetAtt": ["PreviewEdgeStore", "Arn"]}
    assert _OUTPUT_ENV["PreviewEdgeStoreArn"] == "EDGE_STORE_ARN"


def test_only_the_writer_policy_may_touch_the_store_and_only_that_store(resources: Mapping[str, Any]) -> None:
    policy = resources["PreviewEdgeStoreWriterPolicy"]["Properties"]["PolicyDocument"]
    (statement,) = policy["Statement"]

    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {
        "cloudfront-keyvaluestore:DescribeKeyValueStore",
        "cloudfront-keyvaluestore:GetKey",
        "cloudfront-keyvaluestore:PutKey",
        "cloudfront-keyvaluestore:DeleteKey",
    }
    assert statement["Resource"] == {"Fn::GetAtt": ["PreviewEdgeStore", "Arn"]}
    roles = [r for r in resources.values() if r["Type"] == "AWS::IAM::Role"]
    assert roles
    assert "cloudfront-keyvaluestore" not in json.dumps(roles), "no function writes the edge store"


@pytest.fixture(scope="module")
def template() -> Template:
    return sam_template()
