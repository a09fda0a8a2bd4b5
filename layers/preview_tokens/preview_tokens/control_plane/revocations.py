"""Revocation: what ends a token before its ``exp``, and the data plane's view of it.

A revocation is either one token (its ``jti``, never the token string: a token has more than
one base64url spelling) or a *not-before marker* for a sandbox, a tenant or a minting
credential: every token of that subject whose ``iat`` is below the marker is revoked. Each is
appended to one feed (``RevocationsTable``: partition ``feed = "revocations"``, sort key
``entry = <epoch ms>#<kind>#<subject>``), and every entry expires (DynamoDB TTL on
``expires_at``, and the readers' own pruning) when no token it can match is alive any more:
a ``jti`` entry at the token's ``exp``, a marker one maximum token lifetime after it.

The data plane (authorizer and exchange) keeps a :class:`RevocationView` per container: no
DynamoDB read per request; while requests flow, at most one ``Query`` every
``refresh_seconds`` (the first loads every live entry, later ones only entries written since
the previous refresh, minus :data:`OVERLAP_MS` for writers whose clock or commit lagged), so a
revocation is in force within about ``refresh_seconds`` + one request. When the feed cannot be
read for longer than ``max_staleness_seconds``, :meth:`RevocationView.check` raises
:class:`RevocationsUnavailableError` (fail closed: 503), and the next successful refresh
recovers. Standard library only: this is on the authorizer's hot path (``aws_json``, not boto3).

The same table holds a second feed, ``feed = "renewals"`` (:data:`RENEWALS`): one entry per
renewal in place (sort key ``<epoch ms>#<previous jti>``, attribute ``link``: the signed renewal
link of :mod:`preview_tokens.data_plane.origin_assertion`, expiring with the new token). The
exchange's authorizer appends to it (:meth:`RevocationFeed.record_renewal`; its IAM policy allows
that partition only); the fleet ingress reads it beside the revocations
(:meth:`RevocationFeed.renewal_links_since`) to keep streams open across a renewal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol, runtime_checkable

from preview_tokens.keys.aws_json import AwsJsonClient, AwsServiceError
from preview_tokens.keys.tokens import MAX_TTL_SECONDS, PreviewClaims

FEED = "revocations"
RENEWALS = "renewals"
OVERLAP_MS = 30_000
FEED_TIMEOUT_SECONDS = 1.0
EDGE_KEY_PREFIXES = {"jti": "rv.", "sandbox": "rs.", "tenant": "rt.", "credential": "rc."}


class RevocationKind(StrEnum):
    TOKEN = "jti"
    SANDBOX = "sandbox"
    TENANT = "tenant"
    CREDENTIAL = "credential"


_SANDBOX: Final = RevocationKind.SANDBOX.value
_TENANT: Final = RevocationKind.TENANT.value
_CREDENTIAL: Final = RevocationKind.CREDENTIAL.value


class TokenRevokedError(Exception):
    """The token was revoked (by its ``jti`` or by a marker of its sandbox, tenant or credential).

    Its signature verified, so ``claims`` (and the sandbox they name) are proven."""

    def __init__(self, why: str, claims: PreviewClaims) -> None:
        super().__init__(why)
        self.claims = claims


class RevocationsUnavailableError(Exception):
    """The revocation view is older than its allowed staleness: nothing can be proven live."""


class RevocationFeedError(Exception):
    """The feed could not be read (refused, timed out, or an unexpected answer)."""


@dataclass(frozen=True)
class Revocation:
    """One feed entry. ``value``: the token's ``exp`` (kind ``jti``) or the not-before marker."""

    kind: RevocationKind
    subject: str
    value: int
    recorded_at_ms: int

    @property
    def expires_at(self) -> int:
        """When the entry can no longer match a live token."""
        if self.kind is RevocationKind.TOKEN:
            return self.value
        return self.value + MAX_TTL_SECONDS

    @property
    def edge_key(self) -> str:
        """Its key in the CloudFront KeyValueStore (contract 4: ``rv.<jti>``, ``rs.<sandbox_id>``...)."""
        return EDGE_KEY_PREFIXES[self.kind.value] + self.subject

    def to_item(self) -> dict[str, Any]:
        return {
            "feed": {"S": FEED},
            "entry": {"S": f"{self.recorded_at_ms:013d}#{self.kind.value}#{self.subject}"},
            "kind": {"S": self.kind.value},
            "subject": {"S": self.subject},
            "value": {"N": str(self.value)},
            "expires_at": {"N": str(self.expires_at)},
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Revocation:
        recorded_at_ms = int(item["entry"]["S"].split("#", 1)[0])
        return cls(
            RevocationKind(item["kind"]["S"]), item["subject"]["S"], int(item["value"]["N"]), recorded_at_ms
        )


def not_before_marker(kind: RevocationKind, subject: str, now: float) -> Revocation:
    """A marker revoking every token of ``subject`` issued up to and including this second."""
    return Revocation(kind, subject, math.floor(now) + 1, int(now * 1000))


class RevocationFeed:
    """Reads the feed with the SigV4 JSON client (no boto3 on the data plane)."""

    def __init__(self, table: str, client: AwsJsonClient | None = None) -> None:
        self._table = table
        self._client = client

    def entries_since(self, since_ms: int | None, now: int) -> list[Revocation]:
        """Entries recorded after ``since_ms`` (all when ``None``) that can still match a live token."""
        try:
            return [Revocation.from_item(item) for item in self._query(FEED, since_ms, now)]
        except (KeyError, TypeError, ValueError) as error:
            raise RevocationFeedError(f"malformed feed item: {type(error).__name__}") from None

    def renewal_links_since(self, since_ms: int | None, now: int) -> list[str]:
        """The renewal links recorded after ``since_ms`` (all when ``None``) whose new token is live."""
        try:
            return [str(item["link"]["S"]) for item in self._query(RENEWALS, since_ms, now)]
        except (KeyError, TypeError) as error:
            raise RevocationFeedError(f"malformed renewal item: {type(error).__name__}") from None

    def record_renewal(self, link: str, previous_token_id: str, expires_at: int, now: float) -> None:
        """Append a renewal link (the exchange's authorizer). Raises :class:`RevocationFeedError`."""
        item = {
            "feed": {"S": RENEWALS},
            "entry": {"S": f"{int(now * 1000):013d}#{previous_token_id}"},
            "link": {"S": link},
            "expires_at": {"N": str(expires_at)},
        }
        try:
            self._client_for_feed().call("PutItem", {"TableName": self._table, "Item": item})
        except AwsServiceError as error:
            raise RevocationFeedError(error.code) from None

    def _client_for_feed(self) -> AwsJsonClient:
        client = self._client = self._client or AwsJsonClient(
            "dynamodb",
            connect_timeout_seconds=FEED_TIMEOUT_SECONDS,
            read_timeout_seconds=FEED_TIMEOUT_SECONDS,
        )
        return client

    def _query(self, feed: str, since_ms: int | None, now: int) -> list[Mapping[str, Any]]:
        client = self._client_for_feed()
        values: dict[str, object] = {":feed": {"S": feed}, ":now": {"N": str(now)}}
        condition = "#feed = :feed"
        names = {"#feed": "feed"}
        if since_ms is not None:
            condition += " AND #entry > :since"
            names["#entry"] = "entry"
            values[":since"] = {"S": f"{max(0, since_ms):013d}"}
        request: dict[str, object] = {
            "TableName": self._table,
            "KeyConditionExpression": condition,
            "FilterExpression": "expires_at > :now",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        items: list[Mapping[str, Any]] = []
        try:
            while True:
                page = client.call("Query", request)
                found = page.get("Items", [])
                if not isinstance(found, list):
                    raise RevocationFeedError("Query answered without Items")
                items.extend(found)
                if "LastEvaluatedKey" not in page:
                    return items
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except AwsServiceError as error:
            raise RevocationFeedError(error.code) from None


class RevocationSource(Protocol):
    def entries_since(self, since_ms: int | None, now: int) -> list[Revocation]: ...


@runtime_checkable
class RenewalSource(Protocol):
    """A feed that also carries renewal links (:class:`RevocationFeed`)."""

    def renewal_links_since(self, since_ms: int | None, now: int) -> list[str]: ...


class RevocationView:
    """The revocations in force, in memory; refreshed from the feed only when it is asked."""

    def __init__(
        self,
        feed: RevocationSource,
        refresh_seconds: float = 2.0,
        max_staleness_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        on_refresh_failure: Callable[[RevocationFeedError], None] | None = None,
        on_staleness: Callable[[float], None] | None = None,
    ) -> None:
        self._feed = feed
        self._refresh_seconds = refresh_seconds
        self._max_staleness = max_staleness_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._on_failure = on_refresh_failure
        self._on_staleness = on_staleness
        self._attempted_at = -math.inf
        self._refreshed_at = -math.inf
        self._loaded_until_ms: int | None = None
        self._tokens: dict[str, int] = {}
        # Keyed by the kind's value, a plain str: looked up on every request, and a StrEnum member
        # hashes in Python (Enum.__hash__) where a str's hash is computed once and kept.
        self._markers: dict[str, dict[str, int]] = {_SANDBOX: {}, _TENANT: {}, _CREDENTIAL: {}}

    def check(self, claims: PreviewClaims) -> None:
        """Raise :class:`TokenRevokedError` if revoked, :class:`RevocationsUnavailableError` if unknowable."""
        why = self.revoked(
            claims.token_id, claims.sandbox_id, claims.tenant_id, claims.credential_id, claims.issued_at
        )
        if why is not None:
            raise TokenRevokedError(why, claims)

    def revoked(
        self, token_id: str, sandbox_id: str, tenant_id: str, credential_id: str, issued_at: int
    ) -> str | None:
        """Why the token with these ids is revoked, or ``None``. Also for a holder of open streams
        (the origin), from the ids a stream's origin assertion carries. Refreshes as :meth:`check`."""
        now = self._clock()
        if now - self._attempted_at >= self._refresh_seconds:
            self._refresh(now)
        if now - self._refreshed_at > self._max_staleness:
            raise RevocationsUnavailableError("revocation view is stale")
        if token_id in self._tokens:
            return "token revoked"
        markers = self._markers
        not_before = markers[_SANDBOX].get(sandbox_id)
        if not_before is not None and issued_at < not_before:
            return "sandbox revoked"
        not_before = markers[_TENANT].get(tenant_id)
        if not_before is not None and issued_at < not_before:
            return "tenant revoked"
        if credential_id:
            not_before = markers[_CREDENTIAL].get(credential_id)
            if not_before is not None and issued_at < not_before:
                return "credential revoked"
        return None

    def __len__(self) -> int:
        return len(self._tokens) + sum(len(markers) for markers in self._markers.values())

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        wall = self._wall_clock()
        since = None if self._loaded_until_ms is None else self._loaded_until_ms - OVERLAP_MS
        try:
            entries = self._feed.entries_since(since, int(wall))
        except RevocationFeedError as error:
            if self._on_failure is not None:
                self._on_failure(error)
            self._report_staleness(now)
            return
        self.apply(entries, int(wall))
        self._refreshed_at = now
        self._loaded_until_ms = int(wall * 1000)
        self._report_staleness(now)

    def staleness_seconds(self, now: float | None = None) -> float:
        """Seconds since the view last refreshed (``inf`` before its first refresh)."""
        return (self._clock() if now is None else now) - self._refreshed_at

    def _report_staleness(self, now: float) -> None:
        """After each refresh attempt: 0 when it succeeded, else the age of what the view holds."""
        staleness = self.staleness_seconds(now)
        if self._on_staleness is not None and math.isfinite(staleness):
            self._on_staleness(staleness)

    def apply(self, entries: Iterable[Revocation], now: int) -> None:
        """Merge entries (idempotent: an entry seen twice changes nothing) and drop expired ones."""
        for entry in entries:
            if entry.kind is RevocationKind.TOKEN:
                self._tokens[entry.subject] = entry.value
            else:
                markers = self._markers[entry.kind.value]
                markers[entry.subject] = max(entry.value, markers.get(entry.subject, 0))
        self._tokens = {jti: exp for jti, exp in self._tokens.items() if exp > now}
        for kind, markers in self._markers.items():
            self._markers[kind] = {
                subject: value for subject, value in markers.items() if value + MAX_TTL_SECONDS > now
            }
