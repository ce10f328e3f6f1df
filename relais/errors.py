"""One family of errors, translated once at each boundary (CLI exit 1, API status)."""

from __future__ import annotations

from collections.abc import Iterable


class RelaisError(Exception):
    """A user-facing problem: bad input, a refused action, something not found."""

    http_status = 400

    def __init__(self, message: str, *, problems: Iterable[str] = ()) -> None:
        self.problems = list(problems)
        super().__init__(message)

    @property
    def message(self) -> str:
        """The message with each problem on its own line."""
        head = str(self)
        return "\n".join([head, *self.problems]) if self.problems else head


class ValidationError(RelaisError):
    """Input that does not satisfy the contract (file, field or value)."""

    http_status = 422


class NotFoundError(RelaisError):
    """A named thing (item, convention, service, token) does not exist or is out of scope."""

    http_status = 404


class ConflictError(RelaisError):
    """The action contradicts stored state (immutable version, concurrent run)."""

    http_status = 409


class TransitionError(RelaisError):
    """A lifecycle event that does not fit the item's current state."""

    http_status = 409


class ForbiddenError(RelaisError):
    """The caller is known but may not do this."""

    http_status = 403


class ConfigurationError(RelaisError):
    """The environment or database is not usable as configured."""

    http_status = 500
