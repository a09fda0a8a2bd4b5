"""Run a CloudFront Function of template.yaml in node, on viewer-request events built in Python.

CloudFront Functions (runtime 2.0) are JavaScript with two modules of their own: ``crypto`` (node's
``createHmac``/``createHash``) and ``cloudfront`` (``cf.kvs()``, the KeyValueStore). Here the
``import`` lines become ``const`` bindings to node's ``crypto`` and to an in-memory store whose
``get`` rejects a missing key, as CloudFront's does; ``Date.now`` is the event's clock. An event
whose request has ``rawQuery`` gets ``request.rawQueryString()`` returning it (``None``: no query),
and a result whose function called ``cf.selectRequestOriginById`` names that origin in ``__origin``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.template import sam_template, substitute

_IMPORT = re.compile(r"^import (\w+) from '([\w-]+)';$", re.MULTILINE)

HARNESS = r"""
const __input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const __store = __input.kvs;
let __origin = null;
const __modules = {
  crypto: require('crypto'),
  cloudfront: {
    kvs: () => ({ get: async (key) => {
      if (Object.prototype.hasOwnProperty.call(__store, key)) return __store[key];
      throw new Error('KeyValueStore: key not found');
    } }),
    selectRequestOriginById: (id) => { __origin = id; },
  },
};
Date.now = () => __input.now * 1000;
%(code)s
(async () => {
  const results = [];
  for (const event of __input.events) {
    __origin = null;
    if (event.request && 'rawQuery' in event.request) {
      const raw = event.request.rawQuery;
      delete event.request.rawQuery;
      event.request.rawQueryString = () => (raw === null ? undefined : raw);
    }
    const result = await handler(event);
    if (__origin !== null) result.__origin = __origin;
    results.push(result);
  }
  process.stdout.write(JSON.stringify(results));
})().catch((error) => { process.stderr.write(String(error && error.stack)); process.exit(1); });
"""


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError(
            "node is not installed: `apt-get install nodejs` (the CloudFront Functions run in it)"
        )
    return found


def function_code(logical_id: str, parameters: Mapping[str, str]) -> str:
    """A CloudFront Function's code from template.yaml, its ``${Parameter}`` values substituted."""
    return substitute(sam_template()["Resources"][logical_id]["Properties"]["FunctionCode"], parameters)


def node_script(code: str) -> str:
    return HARNESS.replace("%(code)s", _IMPORT.sub(r"const \1 = __modules['\2'];", code))


def run_function(
    code: str, events: Sequence[Mapping[str, Any]], kvs: Mapping[str, str], now: int, workdir: Path
) -> list[dict[str, Any]]:
    """What ``handler`` returns for each event (a request to forward, or a response)."""
    script = workdir / "cloudfront_function.js"
    script.write_text(node_script(code), encoding="utf-8")
    completed = subprocess.run(
        [node(), str(script)],
        input=json.dumps({"events": list(events), "kvs": dict(kvs), "now": now}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    results: list[dict[str, Any]] = json.loads(completed.stdout)
    return results


def cloudfront_cookies(cookie_header: str) -> dict[str, dict[str, Any]]:
    """``event.request.cookies`` as CloudFront builds it: ``value`` the first, ``multiValue`` all."""
    cookies: dict[str, dict[str, Any]] = {}
    for crumb in cookie_header.split(";"):
        crumb = crumb.strip()
        if not crumb:
            continue
        name, _, value = crumb.partition("=")
        name = name.strip()
        if name in cookies:
            entry = cookies[name]
            entry.setdefault("multiValue", [{"value": entry["value"]}]).append({"value": value})
        else:
            cookies[name] = {"value": value}
    return cookies


def viewer_request(
    method: str,
    host: str,
    uri: str,
    cookie: str = "",
    headers: Mapping[str, str] | None = None,
    querystring: Mapping[str, str] | None = None,
    raw_query: str | None = None,
) -> dict[str, Any]:
    """A viewer-request event as CloudFront hands it to a function (header names lower-cased).

    ``raw_query``: the query as sent, for ``rawQueryString()``; ``querystring`` then defaults to
    its parameters (name and value as sent, the last of a name wins).
    """
    request_headers = {name.lower(): {"value": value} for name, value in (headers or {}).items()}
    request_headers["host"] = {"value": host}
    if querystring is None and raw_query:
        querystring = dict(piece.partition("=")[::2] for piece in raw_query.split("&") if piece)
    event: dict[str, Any] = {
        "version": "1.0",
        "context": {"distributionDomainName": "d111111abcdef8.cloudfront.net", "eventType": "viewer-request"},
        "viewer": {"ip": "203.0.113.10"},
        "request": {
            "method": method,
            "uri": uri,
            "querystring": {name: {"value": value} for name, value in (querystring or {}).items()},
            "headers": request_headers,
            "cookies": cloudfront_cookies(cookie),
        },
    }
    if raw_query is not None:
        event["request"]["rawQuery"] = raw_query
    return event
