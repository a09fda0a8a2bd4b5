"""A minimal client for the AWS JSON protocol (KMS, DynamoDB), signed with SigV4.

Why not boto3 here: the data-plane authorizer runs on every request of every embedded
preview and needs exactly two calls per cold start (read the signing keys, decrypt them).
Importing boto3 and building two clients costs about 1.5x the whole budget of its cold start
(README "Performance"). This module is the standard library only: ``http.client``,
``hmac``/``hashlib`` for Signature Version 4, ``json``. Its signature is tested against
botocore's own signer, and its calls against a moto server.

Credentials and region come from the environment exactly as Lambda provides them
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``);
endpoints honour ``AWS_ENDPOINT_URL_<SERVICE>`` and ``AWS_ENDPOINT_URL`` like boto3 does.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from preview_tokens.keys.aws_timeouts import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS

_CONTENT_TYPES = {"kms": "application/x-amz-json-1.1", "dynamodb": "application/x-amz-json-1.0"}
_TARGET_PREFIXES = {"kms": "TrentService", "dynamodb": "DynamoDB_20120810"}


class AwsServiceError(Exception):
    """A call failed: the service answered with an error, or could not be reached."""

    def __init__(
        self,
        service: str,
        operation: str,
        code: str,
        status: int | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(f"{service}.{operation} failed: {code} (status {status})")
        self.service = service
        self.operation = operation
        self.code = code
        self.status = status
        self.details: Mapping[str, object] = details or {}
        """The error document the service answered (e.g. a transaction's ``CancellationReasons``)."""


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AwsCredentials:
        access_key_id = env.get("AWS_ACCESS_KEY_ID", "")
        secret = env.get("AWS_SECRET_ACCESS_KEY", "")
        if not access_key_id or not secret:
            raise AwsServiceError("sts", "credentials", "NoCredentials")
        return cls(access_key_id, secret, env.get("AWS_SESSION_TOKEN") or None)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def sigv4_headers(
    *,
    credentials: AwsCredentials,
    region: str,
    service: str,
    host: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
) -> dict[str, str]:
    """The headers of a signed ``POST /`` request (Signature Version 4)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    all_headers = {k.lower(): v.strip() for k, v in headers.items()}
    all_headers["host"] = host
    all_headers["x-amz-date"] = amz_date
    if credentials.session_token:
        all_headers["x-amz-security-token"] = credentials.session_token
    signed_names = sorted(all_headers)
    canonical_headers = "".join(f"{name}:{all_headers[name]}\n" for name in signed_names)
    signed_headers = ";".join(signed_names)
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical_request = f"POST\n/\n\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = (
        f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    )
    key = _hmac(("AWS4" + credentials.secret_access_key).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    all_headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return all_headers


class AwsJsonClient:
    """Calls one AWS JSON-protocol service (``kms`` or ``dynamodb``)."""

    def __init__(
        self,
        service: str,
        *,
        env: Mapping[str, str] | None = None,
        connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout_seconds: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        if service not in _CONTENT_TYPES:
            raise ValueError(f"unsupported service {service!r}")
        env = os.environ if env is None else env
        self.service = service
        self._env = env
        self._region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = (
            env.get(f"AWS_ENDPOINT_URL_{service.upper()}")
            or env.get("AWS_ENDPOINT_URL")
            or f"https://{service}.{self._region}.amazonaws.com"
        )
        parts = urlsplit(endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"unsupported endpoint for {service}")
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._hostname = parts.hostname
        self._port = parts.port
        self._connect_timeout = connect_timeout_seconds
        self._read_timeout = read_timeout_seconds

    def call(self, operation: str, payload: Mapping[str, object]) -> dict[str, object]:
        body = json.dumps(payload).encode("utf-8")
        try:
            credentials = AwsCredentials.from_env(self._env)
        except AwsServiceError as error:
            raise AwsServiceError(self.service, operation, error.code) from None
        headers = sigv4_headers(
            credentials=credentials,
            region=self._region,
            service=self.service,
            host=self._netloc,
            body=body,
            headers={
                "content-type": _CONTENT_TYPES[self.service],
                "x-amz-target": f"{_TARGET_PREFIXES[self.service]}.{operation}",
            },
            now=datetime.now(UTC),
        )
        connection_class = (
            http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        )
        # One attempt, bounded: connect (and TLS) within the connect timeout, then every read of
        # the answer within the read timeout. No retry here: the caller backs off instead.
        connection = connection_class(self._hostname, self._port, timeout=self._connect_timeout)
        try:
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(self._read_timeout)
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException):
            raise AwsServiceError(self.service, operation, "ConnectionError") from None
        finally:
            connection.close()
        try:
            document = json.loads(raw) if raw else {}
        except ValueError:
            raise AwsServiceError(self.service, operation, "InvalidResponse", status) from None
        if status != 200 or not isinstance(document, dict):
            code = str(document.get("__type", "UnknownError")) if isinstance(document, dict) else "Unknown"
            details = document if isinstance(document, dict) else None
            raise AwsServiceError(self.service, operation, code.rsplit("#", 1)[-1], status, details)
        return document
