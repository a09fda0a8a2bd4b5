"""``preview-ingress``: the fleet ingress from the command line (ingress/README.md).

    preview-ingress --upstream http://127.0.0.1:3000 --sandbox sbx-1 --jwks-url URL --audience AUD \\
        --secret-file /run/secrets/ingress --revocations-table TABLE
    preview-ingress --upstream-template 'http://{sandbox}.internal:8080' ...

The secret comes from a file (``--secret-file``) or an environment variable
(``--secret-env``, default ``PREVIEW_INGRESS_SECRET``), never from the command line (which
``ps`` shows), and is never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from preview_origin.verifier import HttpJwks, OriginAssertionVerifier, StaticJwks
from preview_tokens.control_plane.revocations import FEED_TIMEOUT_SECONDS, RevocationFeed
from preview_tokens.keys.aws_json import AwsJsonClient

from preview_ingress import compiled
from preview_ingress.aws_credentials import CredentialChainEnvironment
from preview_ingress.config import IngressConfig, IngressConfigError
from preview_ingress.log_handler import LoopBatchedHandler, install
from preview_ingress.server import run as run_on_ingress_loop
from preview_ingress.server import serve

DEFAULT_SECRET_ENV = "PREVIEW_INGRESS_SECRET"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="preview-ingress", description=__doc__.split("\n\n")[0])
    where = cli.add_mutually_exclusive_group(required=True)
    where.add_argument("--upstream", help="the one sandbox app this host serves, e.g. http://127.0.0.1:3000")
    where.add_argument(
        "--upstream-template", help="shared: each sandbox's app, e.g. 'http://{sandbox}.internal:8080'"
    )
    cli.add_argument("--sandbox", help="the sandbox id served (with --upstream)")
    keys = cli.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-url", help="the data plane's origin keys (stack output OriginKeysUrl)")
    keys.add_argument("--jwks-file", type=Path, help="the keys pinned (`preview-tokens origin-key jwks`)")
    cli.add_argument("--audience", required=True, help="stack output OriginAssertionAudience")
    cli.add_argument(
        "--secret-file",
        type=Path,
        help="X-Preview-Ingress-Secret's value (a 2nd line: rotating)",
    )
    cli.add_argument("--secret-env", default=DEFAULT_SECRET_ENV, help="else this environment variable")
    feed = cli.add_mutually_exclusive_group(required=True)
    feed.add_argument("--revocations-table", help="stack output RevocationsTableName (dynamodb:Query)")
    feed.add_argument(
        "--no-revocations", action="store_true", help="nothing is revoked before exp (experiments only)"
    )
    cli.add_argument(
        "--revocation-poll-seconds",
        type=float,
        default=2.0,
        help="how often the revocation feed is read (default 2, at most 5)",
    )
    cli.add_argument("--input-path-prefix", default="/input", help="refused to read scope (InputPathPrefix)")
    cli.add_argument(
        "--default-frame-ancestors", default="'none'", help="when an assertion carries no fa claim"
    )
    cli.add_argument(
        "--preserve-host", action="store_true", help="send the app the viewer's Host, not the upstream's"
    )
    cli.add_argument(
        "--preserve-host-for",
        action="append",
        default=[],
        metavar="PATTERN",
        help="--preserve-host for the sandboxes whose id matches (fnmatch, e.g. 'rails-*'; repeatable)",
    )
    cli.add_argument(
        "--keep-app-cookies",
        action="store_true",
        help="relay the app's Set-Cookie as written, not made host-only and partitioned for the frame",
    )
    cli.add_argument(
        "--upstream-ca-file",
        help="PEM CAs the apps' https certificates are checked against (not the system's)",
    )
    cli.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 - a server; reachability is the network's job
        help="the address the proxy listens on (default: all)",
    )
    cli.add_argument("--port", type=_port, default=8080, help="the proxy's port (default 8080)")
    cli.add_argument("--admin-host", default="127.0.0.1", help="the admin port's address (default 127.0.0.1)")
    cli.add_argument("--admin-port", type=_port, default=9090, help="/healthz and /metrics (default 9090)")
    return cli


def _port(value: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, not {port}")
    return port


def _secrets(args: argparse.Namespace) -> list[str]:
    """The accepted secrets: one per line of the file (two while rotating), else the variable."""
    if args.secret_file is not None:
        values: list[str] = Path(args.secret_file).read_text(encoding="utf-8").split()
    else:
        values = os.environ.get(args.secret_env, "").split()
    if not 1 <= len(values) <= 2:
        raise IngressConfigError(
            f"give one secret (two while rotating) in --secret-file or {args.secret_env}"
        )
    return values


def _feed(table: str) -> RevocationFeed:
    """The revocations table, read with whatever credentials this host has (instance or task role...)."""
    client = AwsJsonClient(
        "dynamodb",
        env=CredentialChainEnvironment(),
        connect_timeout_seconds=FEED_TIMEOUT_SECONDS,
        read_timeout_seconds=FEED_TIMEOUT_SECONDS,
    )
    return RevocationFeed(table, client)


def config_from(args: argparse.Namespace, access_log: Callable[[str], None] | None = None) -> IngressConfig:
    jwks = (
        StaticJwks(json.loads(args.jwks_file.read_text(encoding="utf-8")))
        if args.jwks_file is not None
        else HttpJwks(args.jwks_url)
    )
    secrets = _secrets(args)
    return IngressConfig(
        secret=secrets[0],
        next_secret=secrets[1] if len(secrets) == 2 else None,
        verifier=OriginAssertionVerifier(jwks, args.audience),
        revocation_feed=None if args.no_revocations else _feed(args.revocations_table),
        revocations_disabled=bool(args.no_revocations),
        upstream=args.upstream,
        sandbox_id=args.sandbox,
        upstream_template=args.upstream_template,
        input_path_prefix=args.input_path_prefix,
        default_frame_ancestors=args.default_frame_ancestors,
        revocation_poll_seconds=args.revocation_poll_seconds,
        preserve_host=bool(args.preserve_host),
        preserve_host_for=tuple(args.preserve_host_for),
        keep_app_cookies=bool(args.keep_app_cookies),
        upstream_ca_file=args.upstream_ca_file,
        access_log=access_log,
    )


def main(argv: Sequence[str] | None = None) -> int:
    command = parser()
    args = command.parse_args(argv)
    if args.port == args.admin_port != 0:
        command.error(f"--port and --admin-port are both {args.port}")
    lines = LoopBatchedHandler(sys.stderr)
    try:
        config = config_from(args, lines.write_line)
    except (IngressConfigError, OSError, ValueError) as error:
        print(f"preview-ingress: {error}", file=sys.stderr)
        return 2
    install(lines)  # the process's logging, once the configuration holds (not on a refusal)

    def started(port: int, admin_port: int) -> None:
        logging.getLogger("preview_ingress").info(
            json.dumps({"event": "listening", "port": port, "admin_port": admin_port, "compiled": compiled()})
        )

    async def run() -> None:
        # SIGTERM (docker stop, systemd, Kubernetes) and SIGINT: close every stream, then exit.
        task = asyncio.current_task()
        assert task is not None
        for stop in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(stop, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve(config, args.host, args.port, args.admin_port, started, admin_host=args.admin_host)

    try:
        run_on_ingress_loop(run())
    except OSError as error:  # a port in use, an address not on this host
        print(f"preview-ingress: cannot listen: {error.strerror or error}", file=sys.stderr)
        return 2
    logging.getLogger("preview_ingress").info(json.dumps({"event": "stopped"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
