"""Spin's HTTP routing: which component serves a path, and the `spin-*` request headers.

The rules match Spin's router (`crates/routes/src/lib.rs`, which uses the `routefinder`
crate) and `crates/trigger-http/src/headers.rs`:

- A route is a list of `/`-separated segments: literal text, `:name` (one segment,
  captured), and an optional final wildcard `/...` (any rest, including nothing).
- Leading and trailing slashes of both route and path are ignored when matching, so
  `/foo` also serves `/foo/`, and `/foo/...` also serves `/foo`.
- When several routes match, the most specific wins. Compared segment by segment, a
  literal beats a parameter, which beats the wildcard. If one route is a prefix of the
  other, the shorter (exact) one wins. So an exact route beats a wildcard, and the
  longest wildcard prefix wins.
- `spin-path-info` is the part of the path matched by the wildcard, with a leading `/`,
  keeping a trailing slash of the request path; it is empty for exact routes.
- Private routes (`route = { private = true }`) are never routed from outside.
- The query string plays no part in routing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

from spinlocal.manifest import HttpTrigger, join_base, normalize_base

# Segment kinds, ordered by specificity (a higher rank is more specific).
_SLASH, _WILDCARD, _PARAM, _LITERAL = 0, 1, 2, 3


@dataclass(frozen=True)
class Route:
    """One routable trigger, parsed."""

    component_id: str
    raw_route: str  # as written in the manifest
    based_route: str  # with the base applied and one trailing "/" removed: "" for "/"
    segments: tuple[str, ...]  # literal text, ":name", or "*" for the final wildcard
    wildcard: bool

    @property
    def display_path(self) -> str:
        """Return the route without its wildcard suffix, as `spin up` lists it."""
        path = self.based_route.removesuffix("/...").removesuffix("/*")
        return path or "/"

    def describe(self) -> str:
        """Return the route as `spin up` prints it, e.g. "/api (wildcard)"."""
        return f"{self.display_path} (wildcard)" if self.wildcard else self.display_path

    @functools.cached_property
    def _ranks(self) -> tuple[int, ...]:
        ranks: list[int] = []
        for index, segment in enumerate(self.segments):
            if index:
                ranks.append(_SLASH)
            if segment == "*":
                ranks.append(_WILDCARD)
            elif segment.startswith(":"):
                ranks.append(_PARAM)
            else:
                ranks.append(_LITERAL)
        return tuple(ranks)

    def match(self, path: str) -> tuple[dict[str, str], str] | None:
        """Match `path` (no query); return (named captures, wildcard capture) or None."""
        return self._match_parts(_path_parts(path))

    def _match_parts(self, parts: list[str]) -> tuple[dict[str, str], str] | None:
        captures: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment == "*":
                return captures, "/".join(parts[index:])
            if index >= len(parts):
                return None
            if segment.startswith(":"):
                if not parts[index]:
                    return None
                captures[segment[1:]] = parts[index]
            elif segment != parts[index]:
                return None
        if len(parts) != len(self.segments):
            return None
        return captures, ""


def _path_parts(path: str) -> list[str]:
    """Split a path into its segments, ignoring leading and trailing slashes."""
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []


def _compare_specificity(a: Route, b: Route) -> int:
    """Return -1 when `a` is more specific than `b`, 1 when less, 0 when equal."""
    for rank_a, rank_b in zip(a._ranks, b._ranks, strict=False):
        if rank_a != rank_b:
            return -1 if rank_a > rank_b else 1
    if len(a._ranks) != len(b._ranks):
        return -1 if len(a._ranks) < len(b._ranks) else 1
    return 0


@dataclass(frozen=True)
class RouteMatch:
    """The route that serves a request path, and what it captured."""

    route: Route
    path: str  # the request path the match was made on, without query
    path_info: str
    named_captures: dict[str, str] = field(default_factory=dict)

    @property
    def component_id(self) -> str:
        return self.route.component_id

    def spin_headers(
        self, *, full_url: str, client_addr: str, base_path: str = "/"
    ) -> list[tuple[str, str]]:
        """Return the `spin-*` headers Spin adds to a request routed here.

        `full_url` is scheme, host and path with query; `client_addr` is "ip:port".
        """
        raw = self.route.raw_route
        headers = [
            ("spin-path-info", self.path_info),
            ("spin-full-url", full_url),
            ("spin-matched-route", self.route.based_route),
            ("spin-base-path", base_path),
            ("spin-raw-component-route", raw),
            ("spin-component-route", raw.removesuffix("/...")),
            ("spin-client-addr", client_addr),
        ]
        for name, value in self.named_captures.items():
            headers.append((f"spin-path-match-{name.lower().replace('_', '-')}", value))
        return headers


class Router:
    """Route request paths to components, built from a manifest's HTTP triggers."""

    def __init__(self, triggers: Iterable[HttpTrigger], base: str = "/") -> None:
        self.base = normalize_base(base)
        self.routes: list[Route] = []
        for trigger in triggers:
            if trigger.private or trigger.route is None:
                continue
            self.routes.append(_parse_route(trigger.component, trigger.route, self.base))

    def route(self, path: str) -> RouteMatch | None:
        """Return the match for `path` (the path part of the URL only), or None for 404."""
        parts = _path_parts(path)  # split once, not once per route
        best: Route | None = None
        best_captures: tuple[dict[str, str], str] | None = None
        for candidate in self.routes:
            captures = candidate._match_parts(parts)
            if captures is None:
                continue
            if best is None or _compare_specificity(candidate, best) < 0:
                best, best_captures = candidate, captures
        if best is None or best_captures is None:
            return None

        named, rest = best_captures
        return RouteMatch(best, path, _path_info(best, rest, path), named)


def _parse_route(component_id: str, raw_route: str, base: str) -> Route:
    based = join_base(base, raw_route)
    body = based.strip("/")
    segments = body.split("/") if body else []
    wildcard = bool(segments) and segments[-1] in ("...", "*")
    if wildcard:
        segments[-1] = "*"
    return Route(
        component_id=component_id,
        raw_route=raw_route,
        based_route=based,
        segments=tuple(segments),
        wildcard=wildcard,
    )


def _path_info(route: Route, rest: str, path: str) -> str:
    """Return `spin-path-info`: the wildcard part, keeping the request's trailing slash."""
    if not route.wildcard:
        return ""
    trailing = path.endswith("/")
    if not rest:
        return "/" if trailing else ""
    return f"/{rest}/" if trailing else f"/{rest}"
