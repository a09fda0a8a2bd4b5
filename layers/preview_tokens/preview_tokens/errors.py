"""Domain errors of the mint API. Each carries its machine code; ``http_errors`` maps them.

Messages are fixed sentences: never a credential, a token or anything echoed from a request.
"""

from __future__ import annotations


class PreviewError(Exception):
    """Base class of every error the mint API reports to its caller."""

    code = "internal_error"
    message = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class InvalidRequestError(PreviewError):
    code = "invalid_request"
    message = "The request body must be a JSON object with only the fields expires_in and scope."


class RequestTooLargeError(PreviewError):
    code = "request_too_large"
    message = "The request body is larger than 16 KiB."


class UnsupportedMediaTypeError(PreviewError):
    code = "unsupported_media_type"
    message = "The request body must be sent as Content-Type: application/json."


class TokenNotFoundError(PreviewError):
    code = "token_not_found"
    message = "This sandbox has no preview token with this id."


class InvalidScopeError(PreviewError):
    code = "invalid_scope"
    message = 'scope must be "read" or "interact".'


class InvalidExpiresInError(PreviewError):
    code = "invalid_expires_in"
    message = "expires_in must be an integer number of seconds from 1 to 86400."


class UnauthorizedError(PreviewError):
    code = "unauthorized"
    message = "A valid API key or JWT is required (Authorization: Bearer ...)."


class ForbiddenError(PreviewError):
    code = "forbidden"
    message = "This credential may not mint preview tokens here."


class SandboxNotFoundError(PreviewError):
    code = "sandbox_not_found"
    message = "No sandbox with this id exists in your tenant."


class ServiceUnavailableError(PreviewError):
    code = "unavailable"
    message = "The service is temporarily unavailable. Retry later."


class RateLimitedError(PreviewError):
    """The tenant has minted its limit for the current window; ``retry_after`` seconds until the next."""

    code = "rate_limited"
    message = "This tenant has reached its preview-token mint rate. Retry after the time given."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = max(1, retry_after)


class TokenRequestError(InvalidRequestError):
    """A revocation body without a ``token`` string."""

    message = 'The request body must be a JSON object {"token": "mp_..."}.'
