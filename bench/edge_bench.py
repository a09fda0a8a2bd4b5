"""The edge function's cost per request, as a ratio to the HMAC floor measured in the same run (node).

Run with ``make bench`` (``python -m bench.edge_bench``). The CloudFront Function of template.yaml
(``PreviewEdge``, source ``edge/preview_edge.js``) runs in node on a subresource's viewer-request
event with a valid read session and its origin assertion cookie (the whole decision and route:
``mt`` check on the raw query, cookie, header, KeyValueStore read, HMAC, claims, host, the read rule
on the path, the assertion cookie and the session's token id passed on, then the request forwarded
to the ingress), beside the floor:
node's ``createHmac`` + base64url + ``JSON.parse`` + the ``exp`` check of the same token.

The judged figure is the cache miss: each request of a block carries another session (its own
token, sandbox host, origin assertion, and one of several signing keys, so no two requests in a row
share a ``kid`` or a stored key), because CloudFront does not document that a function's module
scope survives between requests; the floor verifies the same tokens in the same order. The warm
figure (one session repeated, what a page load's subresources look like when the scope is kept) is
printed beneath it, not judged. Medians of block means, the four measures interleaved in each
round, after a warm-up; in each of :data:`PROCESSES` node processes, and the process with the
median ratio is the one reported (the JIT's and the collector's timing differ from one process to
the next: single processes of the same code measured from 1.14 to 1.61). The KeyValueStore is an
in-memory promise here, holding what the operator commands write
(``edge_store.signing_key_entries``: each key under ``key.<kid>`` and under its tokens' header
segment, ``hs.``); CloudFront's is a local read at the edge location. The script reports, it does
not fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

from preview_local.cfn_template import load_template
from preview_tokens.data_plane.edge_store import signing_key_entries
from preview_tokens.data_plane.origin_assertion import sign_origin_assertion
from preview_tokens.keys.tokens import PreviewClaims, Scope, sign_preview_token

TARGET_FUNCTION_VS_FLOOR = 1.5  # issue 13 (the retired stream verifier measured 3.47x)
ROUNDS = 15
PROCESSES = 5  # node processes, each its own rounds: the median one is reported
BLOCK = 2000  # requests per block; the cache-miss blocks carry BLOCK distinct sessions
KIDS = ("kbench-1", "kbench-2", "kbench-3")  # rotated: consecutive requests never share a key
HOST_SUFFIX = ".sandboxes.bench.test"
ORIGIN_SEED = hashlib.sha256(b"bench origin key").digest()
PRICE_PER_MILLION_USD = 0.10  # CloudFront Functions invocations, us-east-1 (../shared/DESIGN.md)
_IMPORT = re.compile(r"^import (\w+) from '([\w-]+)';$", re.MULTILINE)

NODE_BENCH = r"""
const __input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const __store = __input.kvs;
const __modules = {
  crypto: require('crypto'),
  cloudfront: {
    kvs: () => ({ get: async (key) => {
      if (Object.prototype.hasOwnProperty.call(__store, key)) return __store[key];
      throw new Error('not found');
    } }),
    selectRequestOriginById: (id) => { __origin = id; },
  },
};
let __origin = null;
const nodeCrypto = require('crypto');
%(code)s
const now = __input.now;
const template = __input.event;
// Each session: its token, the key bytes it is signed with, and its request (a fresh event per
// request and round, built outside the timed loops).
const sessions = __input.sessions.map((s) => ({ token: s.token, key: Buffer.from(s.key, 'base64url'), s }));
function eventOf(s) {
  const event = JSON.parse(template);
  const request = event.request;
  request.rawQueryString = () => 'v=3';
  request.headers.host = { value: s.host };
  request.headers.referer = { value: 'https://' + s.host + '/' };
  request.cookies['__Host-mp_session'] = { value: s.token };
  request.cookies['__Host-mp_session_ends'] = { value: String(s.exp) };
  request.cookies['__Host-mp_origin'] = { value: s.assertion };
  return event;
}
function floor(value, key) {
  const parts = value.slice(3).split('.');
  const signature = Buffer.from(parts[2], 'base64url');
  const expected = nodeCrypto.createHmac('sha256', key).update(parts[0] + '.' + parts[1]).digest();
  if (!nodeCrypto.timingSafeEqual(signature, expected)) throw new Error('bad signature');
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  if (claims.exp <= now) throw new Error('expired');
  return claims;
}
function timeFloor(pool) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < pool.length; i++) floor(pool[i].token, pool[i].key);
  return Number(process.hrtime.bigint() - start) / pool.length;
}
async function timeFunction(pool) {
  const events = pool.map((p) => eventOf(p.s));
  const start = process.hrtime.bigint();
  for (let i = 0; i < events.length; i++) {
    __origin = null;
    const result = await handler(events[i]);
    if (__origin !== 'fleet-ingress') throw new Error('not routed: ' + JSON.stringify(result.headers));
  }
  return Number(process.hrtime.bigint() - start) / events.length;
}
(async () => {
  const miss = sessions;  // a new session on every request
  const warm = sessions.map(() => sessions[0]);  // one session repeated
  const out = { missFloors: [], missFunctions: [], warmFloors: [], warmFunctions: [] };
  for (let round = 0; round < __input.rounds + 2; round++) {
    const missFloor = timeFloor(miss);
    const missFunction = await timeFunction(miss);
    const warmFloor = timeFloor(warm);
    const warmFunction = await timeFunction(warm);
    if (round < 2) continue;
    out.missFloors.push(missFloor); out.missFunctions.push(missFunction);
    out.warmFloors.push(warmFloor); out.warmFunctions.push(warmFunction);
  }
  out.node = process.version;
  process.stdout.write(JSON.stringify(out));
})().catch((error) => { process.stderr.write(String(error && error.stack)); process.exit(1); });
"""


def function_code() -> str:
    code = load_template()["Resources"]["PreviewEdge"]["Properties"]["FunctionCode"]["Fn::Sub"]
    return str(code).replace("${InputPathPrefix}", "/input")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def origin_assertion(claims: PreviewClaims) -> str:
    """The origin assertion the exchange sets for ``claims`` (the edge passes it on unread)."""
    return sign_origin_assertion(claims, "https://ingress.bench.test", "oa-bench", ORIGIN_SEED)


def subresource_event() -> dict[str, Any]:
    """The request every session sends; node fills in its host, referer and session cookies."""
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request"},
        "viewer": {"ip": "203.0.113.10"},
        "request": {
            "method": "GET",
            "uri": "/assets/index-4f2a.js",
            "querystring": {"v": {"value": "3"}},
            "headers": {
                "host": {"value": ""},
                "accept": {"value": "*/*"},
                "referer": {"value": ""},
                "sec-fetch-dest": {"value": "script"},
            },
            "cookies": {
                "theme": {"value": "dark"},
                "__Host-mp_session": {"value": ""},
                "__Host-mp_session_ends": {"value": ""},
                "__Host-mp_origin": {"value": ""},
            },
        },
    }


def sessions(now: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """BLOCK valid read sessions, each on its own sandbox, signed by the kids in turn, and the store."""
    keys = {kid: hashlib.sha256(f"bench key {kid}".encode()).digest() for kid in KIDS}
    made = []
    for i in range(BLOCK):
        sandbox = f"sbx-bench{i:04d}"
        host = sandbox + HOST_SUFFIX
        kid = KIDS[i % len(KIDS)]
        claims = PreviewClaims(sandbox, "tenant-bench", host, Scope.READ, now, now + 3600, f"jti-bench-{i}")
        token = sign_preview_token(claims, kid, keys[kid])
        made.append(
            {
                "token": token,
                "key": b64url(keys[kid]),
                "host": host,
                "exp": claims.expires_at,
                "assertion": origin_assertion(claims),
            }
        )
    return made, {entry: b64url(key) for kid, key in keys.items() for entry in signing_key_entries(kid)}


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> int:
    node = shutil.which("node")
    if node is None:
        print("edge bench: node is not installed (apt-get install nodejs)")
        return 0
    now = int(time.time())
    pool, kvs = sessions(now)
    script = NODE_BENCH.replace("%(code)s", _IMPORT.sub(r"const \1 = __modules['\2'];", function_code()))
    started = time.monotonic()
    stdin = json.dumps(
        {"kvs": kvs, "sessions": pool, "now": now, "event": json.dumps(subresource_event()), "rounds": ROUNDS}
    )
    results = []
    for _ in range(PROCESSES):
        completed = subprocess.run(
            [node, "-e", script], input=stdin, capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            print(f"edge bench failed:\n{completed.stderr}")
            return 1
        results.append(json.loads(completed.stdout))
    ratios = sorted((median(r["missFunctions"]) / median(r["missFloors"]), i) for i, r in enumerate(results))
    result = results[ratios[len(ratios) // 2][1]]
    miss_floor_us = median(result["missFloors"]) / 1000
    miss_us = median(result["missFunctions"]) / 1000
    warm_floor_us = median(result["warmFloors"]) / 1000
    warm_us = median(result["warmFunctions"]) / 1000
    ratio = miss_us / miss_floor_us  # shown rounded up: 1.503 reads 1.51 beside its "MISS"
    verdict = "PASS" if ratio <= TARGET_FUNCTION_VS_FLOOR else "MISS"
    print()
    print(f"Edge function benchmark (node {result['node']}, {os.cpu_count()} CPUs)")
    print(f"{'measure':<52} {'median':>9}   {'baseline (same run)':<40} {'ratio':>6}  {'target':>7}  result")
    print("-" * 128)
    miss_baseline = f"HMAC+base64url+JSON floor: {miss_floor_us:.1f} µs"
    print(
        f"{'PreviewEdge, a new session each request (judged)':<52} {miss_us:>7.1f} µs   "
        f"{miss_baseline:<40} "
        f"{math.ceil(ratio * 100) / 100:5.2f}x  ≤{TARGET_FUNCTION_VS_FLOOR:4.1f}x   {verdict}"
    )
    warm_baseline = f"HMAC+base64url+JSON floor: {warm_floor_us:.1f} µs"
    print(
        f"{'PreviewEdge, one session repeated (warm, not judged)':<52} {warm_us:>7.1f} µs   "
        f"{warm_baseline:<40} {warm_us / warm_floor_us:5.2f}x  {'—':>7}"
    )
    print("-" * 128)
    print(
        f"each: one subresource to the ingress; medians of {ROUNDS} interleaved blocks of {BLOCK} "
        f"({BLOCK} distinct sessions, {len(KIDS)} signing keys in turn, in the judged blocks)"
    )
    print(
        f"judged in {PROCESSES} node processes: "
        + ", ".join(f"{math.ceil(r * 100) / 100:.2f}x" for r, _ in ratios)
        + " (the median process is shown)"
    )
    print(
        f"price per request: one CloudFront Function invocation, ${PRICE_PER_MILLION_USD:.2f} per million "
        f"(${PRICE_PER_MILLION_USD / 1e6:.7f}); no Lambda, no API Gateway on the ingress route"
    )
    print(f"whole run {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
