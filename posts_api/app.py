"""Posts component: the routes and handlers of /api/post.

Every route is authenticated. Writing needs a profile (403 otherwise). A post is
readable by its author, and by everyone when it is public. For anyone else it does not
exist (404, never 403, so its existence does not leak). Only the author may change or
delete it. The route table `ROUTES` is plain data that tests/unit/test_openapi.py
compares with docs/openapi.yaml.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from codethings import posts, profiles, validation, web
from codethings.db import DatabaseError
from codethings.problems import ProblemError
from codethings.web import Context, Request, Response, Route


def create_post(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    body = web.read_json_object(request)
    _require_profile(ctx)
    post_input = validation.parse_post(body, ctx.sub)

    try:
        post = posts.insert(ctx.db, ctx.new_id(), ctx.sub, post_input, ctx.now())
    except DatabaseError as error:
        # The profile was deleted between the check above and the insert.
        if "foreign key" in error.message.lower():
            raise _profile_required() from error
        raise
    return web.json_response(201, post.to_json(), {"Location": f"/api/post/{post.id}"})


def list_posts(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    limit, offset = validation.parse_paging(
        web.query_value(request, "limit"), web.query_value(request, "offset")
    )
    items = posts.list_by_author(ctx.db, ctx.sub, limit, offset)
    return web.json_response(
        200, {"items": [post.to_json() for post in items], "limit": limit, "offset": offset}
    )


def get_post(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    post_id = _post_id(params)
    post = posts.get_visible(ctx.db, post_id, ctx.sub)
    if post is None:
        raise _post_not_found(post_id)
    return web.json_response(200, post.to_json())


def update_post(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    post_id = _post_id(params)
    body = web.read_json_object(request)
    _require_profile(ctx)
    post_input = validation.parse_post(body, ctx.sub)

    post = posts.update(ctx.db, post_id, ctx.sub, post_input, ctx.now())
    if post is None:
        raise _post_not_found(post_id)
    return web.json_response(200, post.to_json())


def delete_post(ctx: Context, request: Request, params: Mapping[str, str]) -> Response:
    post_id = _post_id(params)
    if not posts.delete(ctx.db, post_id, ctx.sub):
        raise _post_not_found(post_id)
    return web.no_content()


def _post_id(params: Mapping[str, str]) -> str:
    """Return the `{id}` path parameter; an id of the wrong form is simply not found."""
    post_id = params["id"]
    if not validation.is_post_id(post_id):
        raise _post_not_found(post_id)
    return post_id


def _require_profile(ctx: Context) -> None:
    if profiles.get_by_id(ctx.db, ctx.sub) is None:
        raise _profile_required()


def _profile_required() -> ProblemError:
    return ProblemError(
        403,
        "Profile required",
        "Writing posts needs a profile. Create one with POST /api/profile first.",
    )


def _post_not_found(post_id: str) -> ProblemError:
    return web.not_found(f"No post {post_id[:64]!r} is visible to you.")


ROUTES: tuple[Route, ...] = (
    Route("/api/post", {"GET": list_posts, "POST": create_post}),
    Route("/api/post/{id}", {"GET": get_post, "PUT": update_post, "DELETE": delete_post}),
)


if sys.platform == "wasi":
    # The Spin entry point exists only inside the component, where spin_sdk is importable.

    class IncomingHandler(web.SpinHandler):
        routes = ROUTES
