"""A small HTTP client for the end-to-end tests: real requests over loopback or any URL."""

from __future__ import annotations

import http.client
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_SECS = 30


@dataclass(frozen=True)
class Reply:
    """A response; header names are lower case."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip()

    def error_fields(self) -> list[str]:
        """Return the `field` of each entry in a problem's `errors` member."""
        return [error["field"] for error in self.json().get("errors", [])]


class HttpClient:
    """Send requests to one base URL, one connection per request."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL {base_url!r} must be an absolute http(s) URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request; `json_body` is serialised and sent as application/json."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            content_type = content_type or "application/json"
        if content_type is not None:
            all_headers["Content-Type"] = content_type

        connection_class = (
            http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(self.host, self.port, timeout=TIMEOUT_SECS)
        try:
            connection.request(method, self.prefix + path, body=body, headers=all_headers)
            response = connection.getresponse()
            data = response.read()
            reply_headers = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, reply_headers, data)
        finally:
            connection.close()


class User:
    """A caller with its own subject and token, and shortcuts for the API."""

    def __init__(self, client: HttpClient, sub: str, token: str) -> None:
        self.client = client
        self.sub = sub
        self.token = token

    def get(self, path: str) -> Reply:
        return self.client.request("GET", path, token=self.token)

    def delete(self, path: str) -> Reply:
        return self.client.request("DELETE", path, token=self.token)

    def post(self, path: str, body: Any) -> Reply:
        return self.client.request("POST", path, token=self.token, json_body=body)

    def put(self, path: str, body: Any) -> Reply:
        return self.client.request("PUT", path, token=self.token, json_body=body)

    def create_profile(self, handle: str | None = None) -> dict[str, Any]:
        """Create a profile with a unique handle (or `handle`) and return it."""
        reply = self.post("/api/profile", {"handle": handle or unique_handle()})
        assert reply.status == 201, reply.body
        profile: dict[str, Any] = reply.json()
        return profile

    def create_post(self, **changes: Any) -> dict[str, Any]:
        reply = self.post("/api/post", post_body(**changes))
        assert reply.status == 201, reply.body
        post: dict[str, Any] = reply.json()
        return post


def unique_handle(prefix: str = "u") -> str:
    """Return a handle no other test uses: the app and its database live for the session."""
    return f"{prefix}_{secrets.token_hex(6)}"


def post_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "content": "This loop never ends",
        "type": "permalink-range",
        "data": {
            "url": "https://github.com/octo/repo/blob/0123abc/src/main.py#L10-L20",
            "start_line": 10,
            "end_line": 20,
        },
        "visibility": "public",
    }
    body.update(changes)
    return body
