"""What API Gateway does with a Lambda authorizer's answer: validate it, then evaluate its policy.

The request is named by its method ARN,
``arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<METHOD>/<path>``. A statement
applies when one of its actions matches ``execute-api:Invoke`` and one of its resources
matches the method ARN, with IAM wildcards (``*`` any run of characters, ``/`` included; ``?``
one character). An applicable ``Deny`` wins over any ``Allow``; no applicable ``Allow`` is an
implicit deny. An answer without ``principalId`` or a well-formed ``policyDocument``, or with a
``context`` value that is not a string, number or boolean, is a configuration error (500).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

INVOKE_ACTION = "execute-api:Invoke"
ContextValue = str | int | float | bool


class AuthorizerOutputError(ValueError):
    """The authorizer's answer is not something API Gateway accepts."""


class PolicyDecision(StrEnum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def applies_to(self, method_arn: str) -> bool:
        return any(_matches(action, INVOKE_ACTION, ignore_case=True) for action in self.actions) and any(
            _matches(resource, method_arn, ignore_case=False) for resource in self.resources
        )


@dataclass(frozen=True)
class AuthorizerOutput:
    principal_id: str
    statements: tuple[Statement, ...]
    context: Mapping[str, ContextValue]

    def decide(self, method_arn: str) -> PolicyDecision:
        applicable = [statement for statement in self.statements if statement.applies_to(method_arn)]
        if any(statement.effect == "Deny" for statement in applicable):
            return PolicyDecision.EXPLICIT_DENY
        if any(statement.effect == "Allow" for statement in applicable):
            return PolicyDecision.ALLOW
        return PolicyDecision.IMPLICIT_DENY

    def context_strings(self) -> dict[str, str]:
        """Context values as API Gateway substitutes them into mappings and templates."""
        return {name: _as_text(value) for name, value in self.context.items()}

    @classmethod
    def parse(cls, answer: object) -> AuthorizerOutput:
        if not isinstance(answer, Mapping):
            raise AuthorizerOutputError("the answer is not a JSON object")
        principal_id = answer.get("principalId")
        if not isinstance(principal_id, str) or not principal_id:
            raise AuthorizerOutputError("principalId is missing")
        document = answer.get("policyDocument")
        if not isinstance(document, Mapping):
            raise AuthorizerOutputError("policyDocument is missing")
        raw_statements = document.get("Statement")
        if isinstance(raw_statements, Mapping):
            raw_statements = [raw_statements]
        if not isinstance(raw_statements, list) or not raw_statements:
            raise AuthorizerOutputError("policyDocument.Statement is missing")
        context = answer.get("context") or {}
        if not isinstance(context, Mapping) or not all(
            isinstance(key, str) and isinstance(value, ContextValue) for key, value in context.items()
        ):
            raise AuthorizerOutputError("context values must be strings, numbers or booleans")
        return cls(principal_id, tuple(_statement(raw) for raw in raw_statements), dict(context))


def method_arn(region: str, account_id: str, api_id: str, stage: str, http_method: str, path: str) -> str:
    """The ARN an authorizer's policy is evaluated against; ``path`` is the request's path."""
    return f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/{http_method}/{path.lstrip('/')}"


def _statement(raw: object) -> Statement:
    if not isinstance(raw, Mapping):
        raise AuthorizerOutputError("a statement is not an object")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise AuthorizerOutputError("a statement's Effect is not Allow or Deny")
    return Statement(
        str(effect), _strings(raw.get("Action"), "Action"), _strings(raw.get("Resource"), "Resource")
    )


def _strings(value: object, name: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) for item in items):
        raise AuthorizerOutputError(f"a statement's {name} is not a string or a list of strings")
    return tuple(items)


def _as_text(value: ContextValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _matches(pattern: str, value: str, ignore_case: bool) -> bool:
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


@cache
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    translated = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile(translated, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)
