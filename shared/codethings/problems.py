"""Problem details (RFC 9457) for error responses.

Any layer raises `ProblemError`; the web layer turns it into the response with
`to_response_parts()`. The body is `application/problem+json` with the standard
members `type`, `title`, `status` and `detail`, plus any extension members.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

PROBLEM_CONTENT_TYPE = "application/problem+json"

# Members that RFC 9457 defines; an extension member may not reuse these names.
_STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


class ProblemError(Exception):
    """An error that maps to one HTTP problem response.

    `extra` contains extension members for the body (for example `jwks_url`), and
    `headers` contains response headers such as `WWW-Authenticate` or `Retry-After`.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        problem_type: str = "about:blank",
        instance: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: object,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"problem status must be 400-599, got {status}")
        clashing = _STANDARD_MEMBERS.intersection(extra)
        if clashing:
            raise ValueError(
                f"extension members {sorted(clashing)} reuse RFC 9457 member names; "
                "pass them as keyword arguments of ProblemError instead"
            )
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.problem_type = problem_type
        self.instance = instance
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, object] = dict(extra)

    def to_dict(self) -> dict[str, object]:
        """Return the problem as a JSON-ready object with the standard members first."""
        body: dict[str, object] = {
            "type": self.problem_type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.instance is not None:
            body["instance"] = self.instance
        body.update(self.extra)
        return body

    def to_response_parts(self) -> tuple[int, dict[str, str], bytes]:
        """Return `(status, headers, body)` for an `application/problem+json` response."""
        body = json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode("utf-8")
        headers = {"content-type": PROBLEM_CONTENT_TYPE}
        for name, value in self.headers.items():
            headers[name.lower()] = value
        return self.status, headers, body
