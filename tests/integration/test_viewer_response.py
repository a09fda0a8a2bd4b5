"""The viewer-response function and the edge store, from the template to the local mirror.

* The ``PreviewEdgeResponse`` CloudFront Function of template.yaml, run by node on viewer-response
  events built from HTTP responses (Set-Cookie lines become the event's ``cookies``, as CloudFront
  presents them), against the local stack's Python mirror on the same cases and the same store.
* The wiring, from the samtranslator output: one KeyValueStore, associated with every function
  that reads it, the viewer-response association, the output the operator CLI reads, and a
  writer policy limited to that store.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from preview_local.http_messages import HttpResponse
from preview_local.viewer_response import ViewerResponse
from preview_tokens.data_plane.access import set_cookie_name
from preview_tokens.operator.operator_cli import _OUTPUT_ENV

from tests.support.template import Template, cloudformation, sam_template, substitute

DEFAULT = "https://default.example.com"
HOST = "sbx-acme.sandboxes.example.com"
STORE = {
    "sb.sbx-acme": "acme",
    "fa.acme": "https://app.acme.com https://*.acme.dev",
    "sb.sbx-quiet": "quiet",  # a tenant that declared nothing
    "key.k1": "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGVzdHMtMDEyMzQ1Njc",
}
SESSION = "__Host-mp_session=mp_x; Max-Age=60; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"
SESSION_ENDS = "__Host-mp_session_ends=1; Max-Age=90000; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"
APP_COOKIE = "theme=dark; Path=/"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    uri: str
    headers: list[tuple[str, str]]
    query: list[str] = field(default_factory=list)
    host: str = HOST
    kept_cookies: set[str] = field(default_factory=set)
    csp: str = "frame-ancestors https://app.acme.com https://*.acme.dev"


CASES = [
    Case("origin sets the session", "GET", "/hostile", [("Set-Cookie", SESSION)]),
    Case(
        "origin sets every data-plane cookie",
        "GET",
        "/",
        [
            ("Set-Cookie", SESSION),
            ("Set-Cookie", SESSION_ENDS),
            ("Set-Cookie", "__Host-mp_origin=x; Path=/; Secure"),
        ],
    ),
    Case("origin sets it in lower case", "GET", "/", [("Set-Cookie", "__host-mp_session=x; Path=/; Secure")]),
    Case("origin sets a nameless cookie", "GET", "/", [("Set-Cookie", "__Host-mp_session; Path=/")]),
    Case(
        "origin's own cookie passes",
        "GET",
        "/",
        [("Set-Cookie", APP_COOKIE), ("Set-Cookie", SESSION)],
        kept_cookies={"theme"},
    ),
    Case("origin answers a POST", "POST", "/api/save", [("Set-Cookie", SESSION)], query=["mt"]),
    Case(
        "exchange, routed path",
        "GET",
        "/__preview/exchange/app",
        [("Set-Cookie", SESSION), ("Set-Cookie", SESSION_ENDS)],
        query=["mt"],
        kept_cookies={"__Host-mp_session", "__Host-mp_session_ends"},
    ),
    Case(
        "exchange, root",
        "GET",
        "/__preview/exchange",
        [("Set-Cookie", SESSION)],
        kept_cookies={"__Host-mp_session"},
    ),
    Case(
        "exchange, viewer's own request",
        "GET",
        "/app",
        [("Set-Cookie", SESSION)],
        query=["lang", "mt"],
        kept_cookies={"__Host-mp_session"},
    ),
    Case("origin under /__preview/", "GET", "/__preview/other", [("Set-Cookie", SESSION)], query=["mt"]),
    Case("origin at a lookalike path", "GET", "/__preview/exchanged", [("Set-Cookie", SESSION)]),
    Case("HEAD is never the exchange", "HEAD", "/__preview/exchange", [("Set-Cookie", SESSION)]),
    Case(
        "origin forbids framing",
        "GET",
        "/",
        [
            ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
            ("X-Frame-Options", "DENY"),
        ],
        csp="default-src 'self', frame-ancestors https://app.acme.com https://*.acme.dev",
    ),
    Case(
        "two policies, two headers",
        "GET",
        "/",
        [
            ("Content-Security-Policy", "img-src *;FRAME-ANCESTORS *, script-src 'self'"),
            ("Content-Security-Policy", "frame-ancestors 'self'"),
        ],
        csp="img-src *, script-src 'self', frame-ancestors https://app.acme.com https://*.acme.dev",
    ),
    Case(
        "the exchange's own policy",
        "GET",
        "/__preview/exchange",
        [("Content-Security-Policy", "default-src 'none'; frame-ancestors https:")],
        query=["mt"],
        csp="default-src 'none', frame-ancestors https://app.acme.com https://*.acme.dev",
    ),
    Case(
        "tenant declared nothing",
        "GET",
        "/",
        [],
        host="sbx-quiet.sandboxes.example.com",
        csp=f"frame-ancestors {DEFAULT}",
    ),
    Case(
        "unknown sandbox",
        "GET",
        "/",
        [],
        host="sbx-nobody.sandboxes.example.com",
        csp=f"frame-ancestors {DEFAULT}",
    ),
    Case(
        "host not a sandbox label",
        "GET",
        "/",
        [],
        host="-x.sandboxes.example.com",
        csp=f"frame-ancestors {DEFAULT}",
    ),
    Case("host in capitals", "GET", "/", [], host="SBX-ACME.sandboxes.example.com"),
]

_NODE_HARNESS_HEAD = """
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const cf = { kvs: () => ({ get: async (key) => {
  if (Object.prototype.hasOwnProperty.call(input.store, key)) { return input.store[key]; }
  throw new Error('the key does not exist');
} }) };
"""
_NODE_HARNESS_TAIL = """
function toEvent(c) {
  const querystring = {};
  c.query.forEach((name) => { querystring[name] = { value: 'v' }; });
  const headers = {}, cookies = {};
  const add = (map, name, entry) => {
    if (!map[name]) { map[name] = entry; return; }
    map[name].multiValue = map[name].multiValue || [Object.assign({}, map[name])];
    map[name].multiValue.push(entry);
  };
  c.headers.forEach(([name, value]) => {
    if (name.toLowerCase() !== 'set-cookie') { add(headers, name.toLowerCase(), { value }); return; }
    const semi = value.indexOf(';');
    const pair = semi < 0 ? value : value.slice(0, semi);
    const attributes = semi < 0 ? '' : value.slice(semi + 1).trim();
    const eq = pair.indexOf('=');
    const cookie = eq < 0 ? pair.trim() : pair.slice(0, eq).trim();
    add(cookies, cookie, { value: eq < 0 ? '' : pair.slice(eq + 1), attributes });
  });
  return {
    version: '1.0',
    context: { distributionDomainName: 'd111111abcdef8.cloudfront.net', eventType: 'viewer-response' },
    viewer: { ip: '203.0.113.10' },
    request: { method: c.method, uri: c.uri, querystring, cookies: {}, headers: { host: { value: c.host } } },
    response: { statusCode: 200, statusDescription: 'OK', headers, cookies },
  };
}
(async () => {
  const results = [];
  for (const c of input.cases) {
    const response = await handler(toEvent(c));
    const headers = [];
    Object.keys(response.headers).forEach((name) => {
      const h = response.headers[name];
      (h.multiValue || [h]).forEach((v) => headers.push([name, v.value]));
    });
    const cookies = Object.keys(response.cookies || {});
    results.push({ headers, cookies });
  }
  process.stdout.write(JSON.stringify(results));
})();
"""


def _function_code() -> str:
    code = sam_template()["Resources"]["PreviewEdgeResponse"]["Properties"]["FunctionCode"]
    return substitute(code, {"FrameAncestors": DEFAULT})


@pytest.fixture(scope="module")
def cloudfront_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the CloudFront Function's JavaScript cannot be run")
    code = _function_code()
    assert code.startswith("import cf from 'cloudfront';\n")
    script = _NODE_HARNESS_HEAD + code.removeprefix("import cf from 'cloudfront';\n") + _NODE_HARNESS_TAIL
    path = tmp_path_factory.mktemp("cloudfront") / "viewer_response.js"
    path.write_text(script, encoding="utf-8")
    cases = [
        {"method": c.method, "uri": c.uri, "query": c.query, "host": c.host, "headers": c.headers}
        for c in CASES
    ]
    document = json.dumps({"store": STORE, "cases": cases})
    completed = subprocess.run([node, str(path)], input=document, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    results: list[dict[str, Any]] = json.loads(completed.stdout)
    return results


def _mirror(case: Case) -> HttpResponse:
    viewer_response = ViewerResponse(STORE.get, DEFAULT)
    response = HttpResponse(200, tuple(case.headers), b"")
    host_name = case.host.lower()
    return viewer_response.apply(case.method, case.uri, case.query, host_name, response)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_local_mirror_strips_origin_cookies_and_sets_the_tenants_frame_ancestors(case: Case) -> None:
    answered = _mirror(case)

    kept = {set_cookie_name(value) for name, value in answered.headers if name.lower() == "set-cookie"}
    assert kept == case.kept_cookies
    assert [v for n, v in answered.headers if n.lower() == "content-security-policy"] == [case.csp]
    assert answered.header("X-Frame-Options") is None


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.name for c in CASES])
def test_cloudfront_function_answers_exactly_like_the_local_mirror(
    cloudfront_results: Sequence[Mapping[str, Any]], index: int
) -> None:
    case = CASES[index]
    answered = _mirror(case)
    result = cloudfront_results[index]

    assert set(result["cookies"]) == case.kept_cookies
    mirrored = sorted((n.lower(), v) for n, v in answered.headers if n.lower() != "set-cookie")
    assert sorted((n, v) for n, v in result["headers"]) == mirrored


def test_viewer_response_function_stays_within_its_size_limit() -> None:
    assert len(_function_code().encode()) < 10 * 1024


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

    assert "PreviewEdgeResponse" in readers
    for name in readers:
        config = functions[name]["Properties"]["FunctionConfig"]
        assert config["Runtime"] == "cloudfront-js-2.0"
        assert config["KeyValueStoreAssociations"] == [
            {"KeyValueStoreARN": {"Fn::GetAtt": ["PreviewEdgeStore", "Arn"]}}
        ]


def test_every_response_of_the_preview_distribution_passes_the_viewer_response_function(
    resources: Mapping[str, Any],
) -> None:
    config = resources["PreviewDistribution"]["Properties"]["DistributionConfig"]
    # the stream behaviours exist when HasStreams holds: every one of them, as written
    streams = config["CacheBehaviors"]["Fn::If"]
    assert streams[0] == "HasStreams"
    behaviors = [config["DefaultCacheBehavior"]]
    for entry in streams[1]:
        behaviors.append(entry["Fn::If"][1] if "Fn::If" in entry else entry)

    for behavior in behaviors:
        responses = [a for a in behavior["FunctionAssociations"] if a["EventType"] == "viewer-response"]
        assert responses == [
            {
                "EventType": "viewer-response",
                "FunctionARN": {"Fn::GetAtt": ["PreviewEdgeResponse", "FunctionMetadata.FunctionARN"]},
            }
        ]


def test_the_default_frame_ancestors_reach_the_function_from_the_stack_parameter() -> None:
    code = sam_template()["Resources"]["PreviewEdgeResponse"]["Properties"]["FunctionCode"]

    assert re.findall(r"\$\{([^}]*)\}", code["Fn::Sub"]) == ["FrameAncestors"]
    assert 'var DEFAULT_FRAME_ANCESTORS = "${FrameAncestors}";' in code["Fn::Sub"]
    pattern = re.compile(sam_template()["Parameters"]["FrameAncestors"]["AllowedPattern"])
    assert pattern.match("https://app.acme.com 'self'")
    for breaking_out in ['https:"; alert(1); "', "https:\\", "https:; script-src *", "https:,*"]:
        assert not pattern.match(breaking_out), breaking_out


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
