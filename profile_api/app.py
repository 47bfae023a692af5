"""Profile component: the routes and handlers of /api/profile.

Every route is authenticated. A profile's `id` is the caller's token subject, so each
caller has at most one profile. The route table `ROUTES` is plain data that
tests/unit/test_openapi.py compares with docs/openapi.yaml.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from codethings import profiles, validation, web
from codethings.db import DatabaseError
from codethings.problems import ProblemError
from codethings.web import Context, Request, Response, Route


def create_profile(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    body = web.read_json_object(request)
    profile_input = validation.parse_profile(body, ctx.sub)

    if profiles.get_by_id(ctx.db, ctx.sub) is not None:
        raise _profile_exists()
    _ensure_handle_free(ctx, profile_input.handle)

    try:
        profile = profiles.insert(
            ctx.db, ctx.sub, profile_input.handle, profile_input.avatar, ctx.now()
        )
    except DatabaseError as error:
        # A concurrent request took the id or the handle after the checks above.
        if not error.is_unique_violation:
            raise
        if profiles.get_by_id(ctx.db, ctx.sub) is not None:
            raise _profile_exists() from error
        raise _handle_taken(profile_input.handle) from error
    return web.json_response(201, profile.to_json(), {"Location": f"/api/profile/{profile.handle}"})


def get_me(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    return web.json_response(200, _require_own_profile(ctx).to_json())


def update_me(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    body = web.read_json_object(request)
    profile_input = validation.parse_profile(body, ctx.sub)
    _require_own_profile(ctx)
    _ensure_handle_free(ctx, profile_input.handle)

    try:
        profile = profiles.update(
            ctx.db, ctx.sub, profile_input.handle, profile_input.avatar, ctx.now()
        )
    except DatabaseError as error:
        if error.is_unique_violation:
            raise _handle_taken(profile_input.handle) from error
        raise
    if profile is None:  # deleted by a concurrent request
        raise _no_own_profile()
    return web.json_response(200, profile.to_json())


def delete_me(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    if not profiles.delete(ctx.db, ctx.sub):
        raise _no_own_profile()
    return web.no_content()


def get_by_handle(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    handle = params["handle"]
    profile = None
    if validation.check_handle(handle) is None:
        profile = profiles.get_by_handle(ctx.db, handle)
    if profile is None:
        raise web.not_found(f"No profile has the handle {handle[:64]!r}.")
    return web.json_response(200, profile.to_json())


def _ensure_handle_free(ctx: Context, handle: str) -> None:
    """Raise 409 if another caller's profile has `handle`, ignoring case."""
    holder = profiles.get_by_handle(ctx.db, handle)
    if holder is not None and holder.id != ctx.sub:
        raise _handle_taken(handle)


def _require_own_profile(ctx: Context) -> profiles.Profile:
    profile = profiles.get_by_id(ctx.db, ctx.sub)
    if profile is None:
        raise _no_own_profile()
    return profile


def _handle_taken(handle: str) -> ProblemError:
    return ProblemError(
        409,
        "Conflict",
        f"The handle {handle!r} is taken (handles are compared ignoring case). Choose another.",
        errors=[{"field": "handle", "message": "is taken"}],
    )


def _profile_exists() -> ProblemError:
    return ProblemError(
        409,
        "Conflict",
        "You already have a profile. Change it with PUT /api/profile/me.",
    )


def _no_own_profile() -> ProblemError:
    return web.not_found("You have no profile. Create one with POST /api/profile.")


ROUTES: tuple[Route, ...] = (
    Route("/api/profile", {"POST": create_profile}),
    # Listed before the {handle} pattern, which would also match "me".
    Route("/api/profile/me", {"GET": get_me, "PUT": update_me, "DELETE": delete_me}),
    Route("/api/profile/{handle}", {"GET": get_by_handle}),
)


if sys.platform == "wasi":
    # The Spin entry point exists only inside the component, where spin_sdk is importable.

    class IncomingHandler(web.SpinHandler):
        routes = ROUTES
