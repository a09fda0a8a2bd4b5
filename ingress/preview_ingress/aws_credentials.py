"""AWS credentials for the revocation feed wherever the ingress runs, not only in Lambda.

The feed's client (``preview_tokens.keys.aws_json``, standard library only for the Lambdas' cold
start) reads credentials from environment variables, as Lambda sets them. A fleet host has them
from its instance profile, its ECS task role, EKS pod identity or a profile instead: botocore's
credential chain finds each, and refreshes temporary ones before they expire. This mapping is the
environment the client reads, with the chain's current credentials and region in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import botocore.session
from botocore.credentials import Credentials

_CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class CredentialChainEnvironment(Mapping[str, str]):
    """``os.environ`` with ``AWS_ACCESS_KEY_ID``/``…SECRET…``/``…SESSION_TOKEN`` and ``AWS_REGION``
    from botocore's credential chain, read afresh (refreshed when temporary) at every lookup."""

    def __init__(self, base: Mapping[str, str] | None = None) -> None:
        self._base = dict(os.environ if base is None else base)
        self._session = botocore.session.Session()
        self._credentials: Credentials | None = self._session.get_credentials()
        region = self._session.get_config_variable("region")
        if region and not (self._base.get("AWS_REGION") or self._base.get("AWS_DEFAULT_REGION")):
            self._base["AWS_REGION"] = str(region)

    def _current(self) -> dict[str, str]:
        if self._credentials is None:
            return {}
        frozen = self._credentials.get_frozen_credentials()
        values = {
            "AWS_ACCESS_KEY_ID": frozen.access_key,
            "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
            "AWS_SESSION_TOKEN": frozen.token,
        }
        return {key: value for key, value in values.items() if value}

    def __getitem__(self, key: str) -> str:
        if key in _CREDENTIAL_KEYS:
            return self._current()[key]
        return self._base[key]

    def __iter__(self) -> Iterator[str]:
        keys = [key for key in self._base if key not in _CREDENTIAL_KEYS]
        return iter([*keys, *self._current()])

    def __len__(self) -> int:
        return sum(1 for _ in self)
