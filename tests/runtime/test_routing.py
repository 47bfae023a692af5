"""Route matching and the spin-* headers, against the cases Spin's router tests."""

from __future__ import annotations

import pytest

from spinlocal.manifest import HttpTrigger
from spinlocal.routing import Router


def router(*routes: tuple[str, str], base: str = "/") -> Router:
    triggers = [
        HttpTrigger(f"t{i}", component, route) for i, (component, route) in enumerate(routes)
    ]
    return Router(triggers, base)


def component_for(r: Router, path: str) -> str | None:
    match = r.route(path)
    return None if match is None else match.component_id


def test_exact_routes() -> None:
    r = router(("foo", "/foo"), ("foobar", "/foo/bar"))
    assert component_for(r, "/foo") == "foo"
    assert component_for(r, "/foo/bar") == "foobar"


def test_exact_ignores_trailing_slash() -> None:
    assert component_for(router(("foo", "/foo")), "/foo/") == "foo"


def test_exact_no_prefix_match() -> None:
    assert component_for(router(("foo", "/foo")), "/foo/bar") is None


def test_root_route() -> None:
    r = router(("root", "/"), ("foo", "/foo"))
    assert component_for(r, "/") == "root"
    assert component_for(r, "/bar") is None


def test_wildcard_matches_everything() -> None:
    r = router(("all", "/..."))
    for path in ["/foo/bar", "/abc/", "/", "/this/should/be/captured"]:
        assert component_for(r, path) == "all", path


def test_longest_wildcard_wins() -> None:
    routes = [("one", "/one/..."), ("onetwo", "/one/two/..."), ("three", "/one/two/three/...")]
    assert component_for(router(*routes), "/one/two/three/four") == "three"
    assert component_for(router(*reversed(routes)), "/one/two/three/four") == "three"
    assert component_for(router(*routes), "/one/two/x") == "onetwo"


def test_exact_beats_wildcard() -> None:
    r = router(("wildcard", "/..."), ("exact", "/one"))
    assert component_for(r, "/one") == "exact"


def test_exact_beats_own_wildcard() -> None:
    r = router(("wild", "/api/..."), ("exact", "/api"))
    assert component_for(r, "/api") == "exact"
    assert component_for(r, "/api/x") == "wild"


def test_literal_beats_parameter() -> None:
    r = router(("param", "/users/:id"), ("me", "/users/me"))
    assert component_for(r, "/users/me") == "me"
    assert component_for(r, "/users/42") == "param"


def test_parameter_beats_wildcard() -> None:
    r = router(("wild", "/users/..."), ("param", "/users/:id"))
    assert component_for(r, "/users/42") == "param"
    assert component_for(r, "/users/42/posts") == "wild"


def test_private_route_unreachable() -> None:
    triggers = [HttpTrigger("a", "private", None, private=True), HttpTrigger("b", "pub", "/pub")]
    r = Router(triggers)
    assert [route.component_id for route in r.routes] == ["pub"]
    assert r.route("/") is None


def test_no_match_is_none() -> None:
    assert router(("foo", "/foo")).route("/bar") is None


def test_base_applies() -> None:
    r = router(("foo", "/foo"), ("foobar", "/foo/bar"), base="/base")
    assert component_for(r, "/base/foo") == "foo"
    assert component_for(r, "/base/foo/bar") == "foobar"
    assert component_for(r, "/foo") is None


@pytest.mark.parametrize(
    ("path", "path_info"),
    [("/test", ""), ("/test/", "/"), ("/test/hello", "/hello"), ("/test/hello/", "/hello/")],
)
def test_path_info_trailing_slash(path: str, path_info: str) -> None:
    match = router(("comp", "/test/...")).route(path)
    assert match is not None
    assert match.path_info == path_info


def test_path_info_root_wildcard() -> None:
    match = router(("comp", "/...")).route("/1/2/3")
    assert match is not None
    assert match.path_info == "/1/2/3"


def test_path_info_exact_empty() -> None:
    match = router(("comp", "/a")).route("/a")
    assert match is not None
    assert match.path_info == ""


def test_named_captures() -> None:
    match = router(("comp", "/1/:two/3")).route("/1/2/3")
    assert match is not None
    assert match.named_captures == {"two": "2"}
    match = router(("comp", "/1/:two/...")).route("/1/2/3")
    assert match is not None
    assert match.named_captures == {"two": "2"}
    assert match.path_info == "/3"


def test_headers_wildcard() -> None:
    match = router(("comp", "/foo/...")).route("/foo/bar")
    assert match is not None
    headers = dict(
        match.spin_headers(
            full_url="https://fermyon.dev/foo/bar?key1=value1&key2=value2",
            client_addr="127.0.0.1:8777",
        )
    )
    assert headers["spin-full-url"] == "https://fermyon.dev/foo/bar?key1=value1&key2=value2"
    assert headers["spin-path-info"] == "/bar"
    assert headers["spin-matched-route"] == "/foo/..."
    assert headers["spin-base-path"] == "/"
    assert headers["spin-raw-component-route"] == "/foo/..."
    assert headers["spin-component-route"] == "/foo"
    assert headers["spin-client-addr"] == "127.0.0.1:8777"


def test_headers_named_wildcard() -> None:
    match = router(("comp", "/foo/:userid/...")).route("/foo/42/bar")
    assert match is not None
    headers = dict(match.spin_headers(full_url="u", client_addr="c"))
    assert headers["spin-path-match-userid"] == "42"
    assert headers["spin-component-route"] == "/foo/:userid"
    assert headers["spin-matched-route"] == "/foo/:userid/..."
    assert headers["spin-path-info"] == "/bar"


def test_headers_param_underscore() -> None:
    match = router(("comp", "/u/:user_id")).route("/u/7")
    assert match is not None
    assert ("spin-path-match-user-id", "7") in match.spin_headers(full_url="u", client_addr="c")


def test_headers_with_base() -> None:
    match = router(("comp", "/foo/..."), base="/shop").route("/shop/foo/x")
    assert match is not None
    headers = dict(match.spin_headers(full_url="u", client_addr="c", base_path="/shop"))
    assert headers["spin-matched-route"] == "/shop/foo/..."
    assert headers["spin-raw-component-route"] == "/foo/..."
    assert headers["spin-base-path"] == "/shop"


def test_route_listing() -> None:
    r = router(("root", "/"), ("api", "/api/..."), ("all", "/..."))
    assert [route.describe() for route in r.routes] == ["/", "/api (wildcard)", "/ (wildcard)"]
