"""The data-plane authorizer's cost, as ratios against baselines measured in the same run.

Run with ``make bench`` (``python -m bench.authorizer_bench``). It starts a moto server on
loopback, creates the tables and the KMS master key of ``template.yaml`` on it, adds a signing
key, and then measures, all in one run:

* in-process, through the real ``lambda_handler(event, context)`` with a REST ``REQUEST``
  authorizer event: the decision for a FIRST-SEEN token (every call a token this process never
  verified) and for an ALREADY-SEEN one (the session cookie every subresource request carries),
  each sent with the origin assertion cookie the exchange sets beside the session; and, for
  information, a first-seen token without that cookie (the authorizer signs the assertion);
* beside them the "floor" (stdlib HMAC-SHA256 + base64url + ``json.loads`` of the payload + the
  ``exp`` check of the same token) and a bare ``jwt.decode`` of it;
* the COLD START: a fresh interpreter that imports the handler module as Lambda would (its
  CodeUri directory and the layer on ``sys.path``) and makes the first decision, reading and
  decrypting the signing key and reading the revocation feed from the moto server over HTTP,
  against ``python -c "import boto3"``, wall clock from spawn to exit; and the cold-start
  process's peak RSS (``wait4`` rusage).

Hot-path figures are medians of block means (blocks of N calls, interleaved kinds, after a
warm-up); cold-start figures are medians of runs. The script reports, it does not fail: the
exit code is 0 whether the targets are met or missed.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import boto3
import jwt
from aws_lambda_powertools.utilities.typing import LambdaContext
from preview_local.aws_resources import ensure_resources
from preview_local.moto_aws import MotoAws, patched_environ
from preview_tokens.data_plane.origin_assertion import (
    ORIGIN_KEY_SET,
    origin_key_context,
    sign_origin_assertion,
)
from preview_tokens.keys.signing_keys import (
    DynamoDbSigningKeyStore,
    KmsKeyDecrypter,
    SigningKey,
    SigningKeyProvider,
)
from preview_tokens.keys.tokens import PreviewClaims, Scope, new_token_id, sign_preview_token
from preview_tokens.operator.origin_key_admin import OriginKeyAdmin
from preview_tokens.operator.signing_key_admin import SigningKeyAdmin

from bench import quiet

ROOT = Path(__file__).resolve().parents[1]
AUTHORIZER_DIR = ROOT / "functions" / "authorizer"
LAYER_DIR = ROOT / "layers" / "preview_tokens"
PREVIEW_DOMAIN = "sandboxes.bench.test"
SANDBOX_ID = "sbx-bench01"
API_ID = "a1b2c3d4e5"
ACCOUNT_ID = "123456789012"
SESSION_COOKIE = "__Host-mp_session"
ORIGIN_ASSERTION_COOKIE = "__Host-mp_origin"
ORIGIN_AUDIENCE = "https://ingress.sandboxes.bench.internal"


class BenchContext:
    """What Lambda passes a handler as its context (the handlers log with it)."""

    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


BENCH_CONTEXT = cast(LambdaContext, BenchContext())

ROUNDS = 21  # interleaved rounds; each round times one block of every in-process kind
SEEN_BLOCK = 2000  # calls per already-seen / floor block
FIRST_BLOCK = 400  # calls per first-seen / jwt.decode block (each first-seen call a new token)
COLD_RUNS = 7

TARGET_SEEN_VS_FLOOR = 2.0
TARGET_FIRST_VS_JWT = 1.2
TARGET_COLD_VS_BOTO3 = 1.3
TARGET_PEAK_MIB = 100.0

# Spawns argv (JSON in argv[1]) with this environment, reaps it with wait4, reports on the last
# line of stdout: wall clock spawn-to-reap, the child's own peak RSS (KiB on Linux), exit code.
_LAUNCHER = """
import json, os, sys, time
argv = json.loads(sys.argv[1])
started = time.perf_counter_ns()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter_ns() - started
sys.stdout.flush()
sys.stdout.write(json.dumps({
    "wall_ms": elapsed / 1e6, "peak_kib": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status),
}) + "\\n")
"""

# The cold-start child: what Lambda does on an init + first invoke, timed by the parent from
# spawn to exit. It reports the split (import / first decision) for the table's footnote.
_CHILD = """
import time
_t0 = time.perf_counter()
import preview_authorizer
_t1 = time.perf_counter()
import json, os, sys
class Context:
    function_name = "bench"; function_version = "$LATEST"; memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"; log_group_name = "/aws/lambda/bench"; log_stream_name = "bench"
    def get_remaining_time_in_millis(self): return 10000
policy = preview_authorizer.lambda_handler(json.loads(os.environ["BENCH_EVENT"]), Context())
_t2 = time.perf_counter()
sys.stdout.write(json.dumps({
    "effect": policy["policyDocument"]["Statement"][0]["Effect"],
    "import_ms": (_t1 - _t0) * 1e3,
    "decide_ms": (_t2 - _t1) * 1e3,
}) + "\\n")
"""


def authorizer_event(
    host: str, cookie_header: str, method: str = "GET", path: str = "/assets/app.js"
) -> dict[str, Any]:
    """A REST API ``REQUEST`` authorizer event as API Gateway sends it for a subresource."""
    headers = {
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate, br, zstd",
        "Accept-Language": "en-GB,en;q=0.9",
        "CloudFront-Forwarded-Proto": "https",
        "CloudFront-Is-Desktop-Viewer": "true",
        "CloudFront-Viewer-Country": "NL",
        "Cookie": cookie_header,
        "Host": host,
        "Referer": f"https://{host}/",
        "Sec-Fetch-Dest": "script",
        "Sec-Fetch-Mode": "no-cors",
        "Sec-Fetch-Site": "same-origin",
        "Sec-Fetch-Storage-Access": "active",
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/150.0.0.0 Safari/537.36",
        "Via": "2.0 0123456789abcdef0123456789abcdef.cloudfront.net (CloudFront)",
        "X-Amz-Cf-Id": "Qm9ndXNDbG91ZEZyb250SWRGb3JUaGVCZW5jaG1hcmtPbmx5",
        "X-Amzn-Trace-Id": "Root=1-6740a1b2-0123456789abcdef01234567",
        "X-Forwarded-For": "203.0.113.7, 130.176.0.12",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    return {
        "type": "REQUEST",
        "methodArn": f"arn:aws:execute-api:us-east-1:{ACCOUNT_ID}:{API_ID}/prod/{method}{path}",
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "x1y2z3",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "BxVd1FzYoAMFbXw=",
            "requestTime": "22/Nov/2026:10:15:30 +0000",
            "path": path,
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": host.split(".", 1)[0],
            "requestTimeEpoch": 1795342530000,
            "requestId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": headers["User-Agent"]},
            "domainName": host,
            "apiId": API_ID,
        },
    }


def session_cookie_header(token: str, origin_assertion: str | None = None) -> str:
    """The Cookie header of a subresource request: the app's cookies and the exchange's.

    The exchange sets the session cookie and, beside it, the token's origin assertion; a
    browser sends both. Without ``origin_assertion`` (a client that kept only the session) the
    authorizer signs the assertion itself.
    """
    ours = f"{SESSION_COOKIE}={token}"
    if origin_assertion:
        ours += f"; {ORIGIN_ASSERTION_COOKIE}={origin_assertion}"
    return f"theme=dark; {ours}; _ga=GA1.1.1234567890.1795342000"


def raw_floor_verify(token: str, key: bytes) -> dict[str, Any]:
    """The least work any HS256 check does: HMAC, base64url, ``json.loads`` of the payload, ``exp``."""
    signing_input, _, signature = token[3:].rpartition(".")
    expected = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))):
        raise ValueError("bad signature")
    payload_segment = signing_input.partition(".")[2]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload_segment + "=" * (-len(payload_segment) % 4))
    )
    if claims["exp"] <= time.time():
        raise ValueError("expired")
    return claims


def block_ns(call: Callable[[Any], object], arguments: Sequence[Any]) -> float:
    """Mean nanoseconds per call over one block (the loop's own cost is in every kind alike)."""
    started = time.perf_counter_ns()
    for argument in arguments:
        call(argument)
    return (time.perf_counter_ns() - started) / len(arguments)


@dataclass(frozen=True)
class ColdRun:
    wall_ms: float
    peak_kib: int
    import_ms: float = 0.0
    decide_ms: float = 0.0


def spawn(argv: list[str], env: dict[str, str]) -> tuple[ColdRun, list[str]]:
    """Run a child to completion: its wall clock from spawn to reaping, its own peak RSS, its stdout lines.

    The child is spawned by a small launcher interpreter, not by this process: Linux carries
    the high-water RSS of the parent's address space across fork/vfork + exec into the child's
    ``ru_maxrss``, so a child of this (large) process would report this process's peak.
    """
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(argv)]
    completed = subprocess.run(launcher, env=env, capture_output=True, check=False)
    *child_lines, launcher_line = completed.stdout.decode().rstrip("\n").split("\n")
    result: dict[str, Any] = {"exit": "launcher failed"}
    if completed.returncode == 0:
        result = json.loads(launcher_line)
    if result["exit"] != 0:
        stderr = completed.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{argv[:3]} exited {result['exit']}: {stderr}")
    return ColdRun(result["wall_ms"], result["peak_kib"]), child_lines


def measure_cold_starts(env: dict[str, str], event: dict[str, Any]) -> tuple[list[ColdRun], list[ColdRun]]:
    child_env = {
        **env,
        "PYTHONPATH": os.pathsep.join((str(AUTHORIZER_DIR), str(LAYER_DIR))),
        "BENCH_EVENT": json.dumps(event),
    }
    authorizer_argv = [sys.executable, "-c", _CHILD]
    boto3_argv = [sys.executable, "-c", "import boto3"]
    authorizer_runs: list[ColdRun] = []
    boto3_runs: list[ColdRun] = []
    for run in range(COLD_RUNS + 1):  # run 0 warms the page cache and the .pyc files
        measured, out = spawn(authorizer_argv, child_env)
        report = json.loads(out[-1])  # the child's last line (log lines, if any, come before it)
        if report["effect"] != "Allow":
            raise RuntimeError(f"cold-start decision was {report['effect']}, expected Allow")
        baseline, _ = spawn(boto3_argv, child_env)
        if run:
            authorizer_runs.append(
                ColdRun(measured.wall_ms, measured.peak_kib, report["import_ms"], report["decide_ms"])
            )
            boto3_runs.append(baseline)
    return authorizer_runs, boto3_runs


def effect(policy: dict[str, Any]) -> str:
    return str(policy["policyDocument"]["Statement"][0]["Effect"])


def main() -> int:
    quiet.silence()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's request log
    started = time.perf_counter()
    aws = MotoAws().start()
    try:
        with patched_environ(aws.environment()):
            resources = ensure_resources(
                prefix="preview-bench", dynamodb=boto3.client("dynamodb"), kms=boto3.client("kms")
            )
            table = resources.environment()["SIGNING_KEYS_TABLE"]
            revocations_table = resources.environment()["REVOCATIONS_TABLE"]
            SigningKeyAdmin(table, edge_store=None).create(resources.kms_key_id)
            OriginKeyAdmin(table).create(resources.kms_key_id)
        env = {
            **{name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "PYTHON"))},
            **aws.environment(),
            "SIGNING_KEYS_TABLE": table,
            # The revocation view is in place: a first read of the feed at the cold start, then
            # the hot path checks it (dict lookups) and refreshes it at most every 2 s.
            "REVOCATIONS_TABLE": revocations_table,
            "PREVIEW_DOMAIN": PREVIEW_DOMAIN,
            "INPUT_PATH_PREFIX": "/input",
            "FRAME_ANCESTORS": "https:",
            "ORIGIN_ASSERTION_AUDIENCE": ORIGIN_AUDIENCE,
        }
        with patched_environ(env):
            signing_key = SigningKeyProvider(
                DynamoDbSigningKeyStore(table), KmsKeyDecrypter(), 60
            ).signing_key()
            origin_key = SigningKeyProvider(
                DynamoDbSigningKeyStore(table, key_set=ORIGIN_KEY_SET),
                KmsKeyDecrypter(),
                60,
                context_for=origin_key_context,
            ).signing_key()
            hot = measure_hot_path(signing_key.kid, signing_key.secret, origin_key)
            cold, boto3_cold = measure_cold_starts(env, hot.cold_event)
    finally:
        aws.stop()
    report(hot, cold, boto3_cold, time.perf_counter() - started)
    return 0


@dataclass(frozen=True)
class HotPath:
    first_seen_ns: float
    first_seen_signing_ns: float
    already_seen_ns: float
    floor_ns: float
    jwt_ns: float
    cold_event: dict[str, Any]


def mint(kid: str, key: bytes, count: int, origin_key: SigningKey) -> list[tuple[str, str]]:
    """``count`` tokens, each with the origin assertion the exchange would set beside it."""
    now = int(time.time())
    host = f"{SANDBOX_ID}.{PREVIEW_DOMAIN}"
    minted = []
    for _ in range(count):
        claims = PreviewClaims(SANDBOX_ID, "tnt-bench", host, Scope.INTERACT, now, now + 3600, new_token_id())
        assertion = sign_origin_assertion(claims, ORIGIN_AUDIENCE, origin_key.kid, origin_key.secret)
        minted.append((sign_preview_token(claims, kid, key), assertion))
    return minted


def measure_hot_path(kid: str, key: bytes, origin_key: SigningKey) -> HotPath:
    sys.path.insert(0, str(AUTHORIZER_DIR))
    import preview_authorizer  # imported once the environment is set

    handler = preview_authorizer.lambda_handler
    host = f"{SANDBOX_ID}.{PREVIEW_DOMAIN}"
    (seen_token, seen_assertion), (cold_token, cold_assertion), *fresh = mint(
        kid, key, 2 + 2 * FIRST_BLOCK * (ROUNDS + 1), origin_key
    )
    seen_event = authorizer_event(host, session_cookie_header(seen_token, seen_assertion))
    fresh_events = [authorizer_event(host, session_cookie_header(*minted)) for minted in fresh[::2]]
    signing_events = [authorizer_event(host, session_cookie_header(token)) for token, _ in fresh[1::2]]
    seen_policy = handler(seen_event, BENCH_CONTEXT)  # also loads the key rings over HTTP
    if effect(seen_policy) != "Allow" or seen_policy["context"]["origin_assertion"] != seen_assertion:
        raise RuntimeError("the authorizer denied the benchmark's token or did not forward its assertion")
    raw_floor_verify(seen_token, key)
    jwt.decode(seen_token[3:], key, algorithms=["HS256"], audience=host)

    def decide(event: dict[str, Any]) -> object:
        return handler(event, BENCH_CONTEXT)

    def floor(token: str) -> object:
        return raw_floor_verify(token, key)

    def bare_jwt(token: str) -> object:
        return jwt.decode(token[3:], key, algorithms=["HS256"], audience=host)

    seen_events = [seen_event] * SEEN_BLOCK
    seen_tokens = [seen_token] * SEEN_BLOCK
    jwt_tokens = [seen_token] * FIRST_BLOCK
    samples: dict[str, list[float]] = {"first": [], "signing": [], "seen": [], "floor": [], "jwt": []}
    gc.collect()
    gc.disable()
    try:
        for round_number in range(ROUNDS + 1):  # round 0 is the warm-up
            first_events = fresh_events[round_number * FIRST_BLOCK : (round_number + 1) * FIRST_BLOCK]
            timings = {
                "first": block_ns(decide, first_events),
                "signing": block_ns(
                    decide, signing_events[round_number * FIRST_BLOCK : (round_number + 1) * FIRST_BLOCK]
                ),
                "seen": block_ns(decide, seen_events),
                "floor": block_ns(floor, seen_tokens),
                "jwt": block_ns(bare_jwt, jwt_tokens),
            }
            if round_number:
                for kind, value in timings.items():
                    samples[kind].append(value)
            gc.collect()
    finally:
        gc.enable()
    denied = [
        event
        for event in fresh_events[:: FIRST_BLOCK // 8]
        if effect(handler(event, BENCH_CONTEXT)) != "Allow"
    ]
    if denied:
        raise RuntimeError(f"{len(denied)} first-seen tokens were denied")
    return HotPath(
        first_seen_ns=statistics.median(samples["first"]),
        first_seen_signing_ns=statistics.median(samples["signing"]),
        already_seen_ns=statistics.median(samples["seen"]),
        floor_ns=statistics.median(samples["floor"]),
        jwt_ns=statistics.median(samples["jwt"]),
        cold_event=authorizer_event(host, session_cookie_header(cold_token, cold_assertion), path="/"),
    )


def report(hot: HotPath, cold: list[ColdRun], boto3_cold: list[ColdRun], elapsed_s: float) -> None:
    cold_ms = statistics.median(run.wall_ms for run in cold)
    boto3_ms = statistics.median(run.wall_ms for run in boto3_cold)
    peak_mib = max(run.peak_kib for run in cold) / 1024
    boto3_peak_mib = max(run.peak_kib for run in boto3_cold) / 1024
    rows = [
        (
            "already-seen token, lambda_handler",
            f"{hot.already_seen_ns / 1e3:8.2f} µs",
            f"raw HMAC floor {hot.floor_ns / 1e3:.2f} µs",
            hot.already_seen_ns / hot.floor_ns,
            TARGET_SEEN_VS_FLOOR,
        ),
        (
            "first-seen token, lambda_handler",
            f"{hot.first_seen_ns / 1e3:8.2f} µs",
            f"bare jwt.decode {hot.jwt_ns / 1e3:.2f} µs",
            hot.first_seen_ns / hot.jwt_ns,
            TARGET_FIRST_VS_JWT,
        ),
        (
            "cold start to first decision",
            f"{cold_ms:8.1f} ms",
            f'python -c "import boto3" {boto3_ms:.1f} ms',
            cold_ms / boto3_ms,
            TARGET_COLD_VS_BOTO3,
        ),
    ]
    print()
    print(f"Preview authorizer benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"{'measure':<36} {'median':>11}   {'baseline (same run)':<34} {'ratio':>6}  {'target':>7}  result")
    print("-" * 108)
    for name, value, baseline, ratio, target in rows:
        verdict = "PASS" if ratio <= target else "MISS"
        print(f"{name:<36} {value:>11}   {baseline:<34} {ratio:5.2f}x  ≤{target:4.1f}x   {verdict}")
    print(
        f"{'first-seen, no origin cookie (signs)':<36} {hot.first_seen_signing_ns / 1e3:8.2f} µs   "
        f"{f'bare jwt.decode {hot.jwt_ns / 1e3:.2f} µs':<34} {hot.first_seen_signing_ns / hot.jwt_ns:5.2f}x  "
        f"{'':>7}   (informational: once per token per instance)"
    )
    verdict = "PASS" if peak_mib <= TARGET_PEAK_MIB else "MISS"
    print(
        f"{'cold start peak RSS (max of runs)':<36} {peak_mib:7.1f} MiB   "
        f"{f'import boto3 alone {boto3_peak_mib:.1f} MiB':<34} {'':>6}  "
        f"≤{TARGET_PEAK_MIB:3.0f} MiB  {verdict}"
    )
    print("-" * 108)
    import_ms = statistics.median(run.import_ms for run in cold)
    decide_ms = statistics.median(run.decide_ms for run in cold)
    print(
        f"hot path: medians of {ROUNDS} interleaved blocks ({SEEN_BLOCK} calls already-seen/floor, "
        f"{FIRST_BLOCK} first-seen/jwt; first-seen = a token never verified before by the process, sent "
        f"with the origin assertion cookie the exchange set beside it)"
    )
    print(
        f"cold start: median of {COLD_RUNS} fresh processes, spawn to exit; inside the child "
        f"import {import_ms:.1f} ms + first decision (DynamoDB Query + KMS Decrypt over HTTP) "
        f"{decide_ms:.1f} ms"
    )
    print(f"whole run {elapsed_s:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
