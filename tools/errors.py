"""The one exception family every layer raises for things a person should read.

A `CockpitError` carries a human message (what went wrong) and, when we know it, the fix
("Set it with `/connect runpod`."). Surfaces print `str(error)`; stack traces go to logs only.
"""

from __future__ import annotations


class CockpitError(Exception):
    """An error whose text is safe and useful to show to the person who asked."""

    code = "error"

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} {self.fix}" if self.fix else self.message


class InvalidInput(CockpitError):
    """The request was malformed; nothing was changed."""

    code = "invalid_input"


class NeedsChoice(InvalidInput):
    """What was asked fits several things; nothing was done. Each of `options` — (label,
    value) — is the same request with `field` set to that value: surfaces offer them as
    buttons (or, in the console, the commands to type)."""

    code = "needs_choice"

    def __init__(
        self, message: str, *, field: str, options: list[tuple[str, str]], fix: str | None = None
    ) -> None:
        super().__init__(message, fix=fix)
        self.field = field
        self.options = options


class NotFound(CockpitError):
    code = "not_found"


class Forbidden(CockpitError):
    code = "forbidden"


class Conflict(CockpitError):
    code = "conflict"


class RateLimited(CockpitError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.retry_after = retry_after


class ProviderError(CockpitError):
    """An outside service (RunPod, Hugging Face, Anthropic, Slack...) failed or refused.

    `service` names it, `status` is the HTTP status when there was one, `retryable` says whether
    trying again later may help.
    """

    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        fix: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, fix=fix)
        self.service = service
        self.status = status
        self.retryable = retryable
