"""The ``?mt=`` authorizer's cost, as ratios against baselines measured in the same run.

The exchange route's REQUEST authorizer (``functions/authorizer/exchange_authorizer.py``) is the
data plane's only Lambda verifier: it runs once per preview open (one ``?mt=`` navigation), never
on the preview's other requests, which the edge decides. Run with ``make bench``
(``python -m bench.authorizer_bench``). It starts a moto server on loopback, creates the tables
and the KMS master key of ``template.yaml`` on it, adds a signing key and an origin key, and then
measures, all in one run:

* in-process, through the real ``lambda_handler(event, context)`` with the ``REQUEST`` event API
  Gateway sends for ``GET /__preview/exchange/{proxy+}`` (``events/exchange_mt.json``, the token
  in ``X-Preview-Token``): the grant of a FIRST-SEEN token (every call a token this process never
  verified, as every preview open brings), which verifies the token and signs its origin
  assertion (Ed25519);
* beside it the baseline of that same work done bare: ``jwt.decode`` of the token plus
  ``sign_origin_assertion`` of its claims;
* the COLD START: a fresh interpreter that imports the handler module as Lambda would (its
  CodeUri directory and the layer on ``sys.path``) and answers the first grant, reading and
  decrypting the signing and origin keys and reading the revocation feed from the moto server
  over HTTP, against ``python -c "import boto3"``, wall clock from spawn to exit; and the
  cold-start process's peak RSS (``wait4`` rusage).

Hot-path figures are medians of block means (blocks of N calls, interleaved kinds, after a
warm-up); cold-start figures are medians of runs. The script reports, it does not fail: the
exit code is 0 whether the targets are met or missed.
"""

from __future__ import annotations

import gc
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
from preview_local.gateway import request_authorizer_event
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
FIRST_BLOCK = 400  # calls per block (each authorizer call a new token)
COLD_RUNS = 7

TARGET_FIRST_VS_BARE = 1.2
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
def child_context(name: str, memory_mb: int) -> str:
    """:class:`BenchContext` as source for a cold-start child (which imports nothing of the bench:
    only what Lambda would load)."""
    return (
        "class Context:\n"
        f"    function_name = {name!r}; function_version = '$LATEST'; memory_limit_in_mb = {memory_mb}\n"
        f"    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:{name}'\n"
        "    aws_request_id = 'bench'; log_group_name = '/aws/lambda/bench'; log_stream_name = 'bench'\n"
        "    def get_remaining_time_in_millis(self): return 10000"
    )


_CHILD = """
import time
_t0 = time.perf_counter()
import exchange_authorizer
_t1 = time.perf_counter()
import json, os, sys
__CONTEXT__
answer = exchange_authorizer.lambda_handler(json.loads(os.environ["BENCH_EVENT"]), Context())
_t2 = time.perf_counter()
sys.stdout.write(json.dumps({
    "granted": bool(answer["context"].get("origin_assertion")) and not answer["context"].get("reason"),
    "import_ms": (_t1 - _t0) * 1e3,
    "decide_ms": (_t2 - _t1) * 1e3,
}) + "\\n")
""".replace("__CONTEXT__", child_context("bench", 128))


def exchange_event(host: str, token: str) -> dict[str, Any]:
    """``GET /__preview/exchange/...`` as API Gateway proxies a ``?mt=`` link the edge routed there."""
    text = (ROOT / "events" / "exchange_mt.json").read_text(encoding="utf-8").replace("{{token}}", token)
    event: dict[str, Any] = json.loads(text)
    event["headers"]["Host"] = host
    event["multiValueHeaders"]["Host"] = [host]
    event["requestContext"]["domainName"] = host
    return event


def authorizer_event(event: dict[str, Any]) -> dict[str, Any]:
    """The ``REQUEST`` authorizer event API Gateway derives from the exchange route's ``event``."""
    arn = f"arn:aws:execute-api:us-east-1:{ACCOUNT_ID}:{API_ID}/preview/GET{event['path']}"
    return request_authorizer_event(event, arn)


def granted(answer: dict[str, Any]) -> bool:
    """An Allow whose context grants the token (a refusal is an Allow carrying a ``reason``)."""
    context: dict[str, Any] = answer["context"]
    allow = answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    return allow and not context.get("reason") and bool(context.get("origin_assertion"))


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
        if not report["granted"]:
            raise RuntimeError("the cold-start authorizer refused the benchmark's token")
        baseline, _ = spawn(boto3_argv, child_env)
        if run:
            authorizer_runs.append(
                ColdRun(measured.wall_ms, measured.peak_kib, report["import_ms"], report["decide_ms"])
            )
            boto3_runs.append(baseline)
    return authorizer_runs, boto3_runs


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
    jwt_ns: float
    sign_ns: float
    cold_event: dict[str, Any]

    @property
    def bare_ns(self) -> float:
        return self.jwt_ns + self.sign_ns


def mint(kid: str, key: bytes, count: int) -> list[tuple[str, PreviewClaims]]:
    """``count`` tokens for the benchmark's sandbox, with their claims."""
    now = int(time.time())
    host = f"{SANDBOX_ID}.{PREVIEW_DOMAIN}"
    minted = []
    for _ in range(count):
        claims = PreviewClaims(SANDBOX_ID, "tnt-bench", host, Scope.INTERACT, now, now + 3600, new_token_id())
        minted.append((sign_preview_token(claims, kid, key), claims))
    return minted


def measure_hot_path(kid: str, key: bytes, origin_key: SigningKey) -> HotPath:
    sys.path.insert(0, str(AUTHORIZER_DIR))
    import exchange_authorizer  # imported once the environment is set

    handler = exchange_authorizer.lambda_handler
    host = f"{SANDBOX_ID}.{PREVIEW_DOMAIN}"
    (warm_token, _), (cold_token, _), *fresh = mint(kid, key, 2 + FIRST_BLOCK * (ROUNDS + 1))
    fresh_events = [authorizer_event(exchange_event(host, token)) for token, _ in fresh]
    if not granted(handler(authorizer_event(exchange_event(host, warm_token)), BENCH_CONTEXT)):
        raise RuntimeError("the authorizer refused the benchmark's token")  # also loads the key rings

    def decide(event: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = handler(event, BENCH_CONTEXT)
        return answer

    def bare_jwt(token: str) -> object:
        return jwt.decode(token[3:], key, algorithms=["HS256"], audience=host)

    def bare_sign(claims: PreviewClaims) -> object:
        return sign_origin_assertion(claims, ORIGIN_AUDIENCE, origin_key.kid, origin_key.secret)

    samples: dict[str, list[float]] = {"first": [], "jwt": [], "sign": []}
    gc.collect()
    gc.disable()
    try:
        for round_number in range(ROUNDS + 1):  # round 0 is the warm-up
            block = slice(round_number * FIRST_BLOCK, (round_number + 1) * FIRST_BLOCK)
            timings = {
                "first": block_ns(decide, fresh_events[block]),
                "jwt": block_ns(bare_jwt, [token for token, _ in fresh[block]]),
                "sign": block_ns(bare_sign, [claims for _, claims in fresh[block]]),
            }
            if round_number:
                for kind, value in timings.items():
                    samples[kind].append(value)
            gc.collect()
    finally:
        gc.enable()
    refused = [event for event in fresh_events[:: FIRST_BLOCK // 8] if not granted(decide(event))]
    if refused:
        raise RuntimeError(f"{len(refused)} first-seen tokens were refused")
    return HotPath(
        first_seen_ns=statistics.median(samples["first"]),
        jwt_ns=statistics.median(samples["jwt"]),
        sign_ns=statistics.median(samples["sign"]),
        cold_event=authorizer_event(exchange_event(host, cold_token)),
    )


def report(hot: HotPath, cold: list[ColdRun], boto3_cold: list[ColdRun], elapsed_s: float) -> None:
    cold_ms = statistics.median(run.wall_ms for run in cold)
    boto3_ms = statistics.median(run.wall_ms for run in boto3_cold)
    peak_mib = max(run.peak_kib for run in cold) / 1024
    boto3_peak_mib = max(run.peak_kib for run in boto3_cold) / 1024
    rows = [
        (
            "?mt= token, lambda_handler",
            f"{hot.first_seen_ns / 1e3:8.2f} µs",
            f"jwt.decode + assertion {hot.bare_ns / 1e3:.2f} µs",
            hot.first_seen_ns / hot.bare_ns,
            TARGET_FIRST_VS_BARE,
        ),
        (
            "cold start to first grant",
            f"{cold_ms:8.1f} ms",
            f'python -c "import boto3" {boto3_ms:.1f} ms',
            cold_ms / boto3_ms,
            TARGET_COLD_VS_BOTO3,
        ),
    ]
    print()
    print(f"?mt= authorizer benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"{'measure':<36} {'median':>11}   {'baseline (same run)':<34} {'ratio':>6}  {'target':>7}  result")
    print("-" * 108)
    for name, value, baseline, ratio, target in rows:
        verdict = "PASS" if ratio <= target else "MISS"
        print(f"{name:<36} {value:>11}   {baseline:<34} {ratio:5.2f}x  ≤{target:4.1f}x   {verdict}")
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
        f"hot path: medians of {ROUNDS} interleaved blocks of {FIRST_BLOCK} calls, each a token never "
        f"verified before by the process (once per preview open); baseline jwt.decode "
        f"{hot.jwt_ns / 1e3:.2f} µs + sign_origin_assertion {hot.sign_ns / 1e3:.2f} µs"
    )
    print(
        f"cold start: median of {COLD_RUNS} fresh processes, spawn to exit; inside the child "
        f"import {import_ms:.1f} ms + first grant (DynamoDB Query + KMS Decrypt over HTTP) "
        f"{decide_ms:.1f} ms"
    )
    print(f"whole run {elapsed_s:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
