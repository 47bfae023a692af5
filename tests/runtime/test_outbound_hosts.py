"""Unit tests of `allowed_outbound_hosts` parsing and matching (pure logic)."""

from __future__ import annotations

import pytest

from spinlocal.outbound_hosts import (
    AllowedHosts,
    AllowedHostsError,
    parse_url,
    postgres_addresses,
)


def no_templates(template: str) -> str:
    raise AssertionError(f"unexpected template {template!r}")


def hosts(*entries: str) -> AllowedHosts:
    return AllowedHosts.parse(entries, no_templates)


# --- accepted entries and what they match ---------------------------------------------


def test_exact_host_default_port() -> None:
    allowed = hosts("https://api.example.com")
    assert allowed.allows("https", "api.example.com", None)
    assert allowed.allows("https", "api.example.com", 443)
    assert not allowed.allows("https", "api.example.com", 8443)
    assert not allowed.allows("http", "api.example.com", None)
    assert not allowed.allows("https", "other.example.com", None)


@pytest.mark.parametrize(
    ("scheme", "port"),
    [("http", 80), ("https", 443), ("postgres", 5432), ("mysql", 3306), ("redis", 6379),
     ("mqtt", 1883)],
)
def test_default_port_per_scheme(scheme: str, port: int) -> None:
    allowed = hosts(f"{scheme}://db.example.com")
    assert allowed.allows(scheme, "db.example.com", port)
    assert allowed.allows(scheme, "db.example.com", None)
    assert not allowed.allows(scheme, "db.example.com", port + 1)


def test_explicit_port() -> None:
    allowed = hosts("postgres://127.0.0.1:5433")
    assert allowed.allows("postgres", "127.0.0.1", 5433)
    assert not allowed.allows("postgres", "127.0.0.1", 5432)
    assert not allowed.allows("postgres", "127.0.0.1", None)


def test_trailing_slash_ignored() -> None:
    allowed = hosts("https://my.api.com/", "http://example.com:8080/")
    assert allowed.allows("https", "my.api.com", None)
    assert allowed.allows("http", "example.com", 8080)


def test_wildcard_scheme() -> None:
    allowed = hosts("*://example.com:7777")
    assert allowed.allows("http", "example.com", 7777)
    assert allowed.allows("postgres", "example.com", 7777)
    assert not allowed.allows("http", "example.com", 80)


def test_wildcard_host() -> None:
    allowed = hosts("https://*")
    assert allowed.allows("https", "anything.example.org", None)
    assert not allowed.allows("https", "anything.example.org", 444)


def test_wildcard_port() -> None:
    allowed = hosts("http://localhost:*")
    assert allowed.allows("http", "localhost", 1)
    assert allowed.allows("http", "localhost", 65535)
    assert allowed.allows("http", "localhost", None)


def test_allow_all() -> None:
    allowed = hosts("*://*:*")
    assert allowed.allows("tcp", "10.1.2.3", 9)
    assert allowed.allows("whatever", "x", None)


def test_subdomain_wildcard() -> None:
    allowed = hosts("http://*.example.com", "http://*.example2.com:8383")
    assert allowed.allows("http", "a.example.com", None)
    assert allowed.allows("http", "a.b.example.com", None)
    assert allowed.allows("http", "a.b.example2.com", 8383)
    assert not allowed.allows("http", "a.b.example2.com", None)
    assert not allowed.allows("http", "example.com", None)
    assert not allowed.allows("http", "myexample.com", None)


def test_port_range_excludes_end() -> None:
    allowed = hosts("http://localhost:4444..5555")
    assert allowed.allows("http", "localhost", 4444)
    assert allowed.allows("http", "localhost", 5554)
    assert not allowed.allows("http", "localhost", 5555)
    assert not allowed.allows("http", "localhost", 4443)


def test_ipv4_address() -> None:
    allowed = hosts("http://192.168.1.1:3002")
    assert allowed.allows("http", "192.168.1.1", 3002)
    assert not allowed.allows("http", "192.168.1.2", 3002)


def test_ipv6_address() -> None:
    allowed = hosts("http://[::1]:8001")
    assert allowed.allows("http", "[::1]", 8001)
    assert not allowed.allows("http", "[::2]", 8001)


def test_cidr_block() -> None:
    allowed = hosts("*://127.0.0.1/24:63551", "*://ff00::/8:80")
    assert allowed.allows("tcp", "127.0.0.200", 63551)
    assert not allowed.allows("tcp", "127.0.1.1", 63551)
    assert not allowed.allows("tcp", "127.0.0.200", 63552)
    assert allowed.allows("http", "[ff00::1]", 80)
    assert not allowed.allows("http", "db.example.com", 80)


def test_host_case_insensitive() -> None:
    allowed = hosts("https://API.Example.com")
    assert allowed.allows("https", "api.example.com", None)
    assert allowed.allows("HTTPS", "Api.Example.Com", None)


def test_self_allows_relative() -> None:
    allowed = hosts("http://self")
    assert allowed.allows_self()
    assert not allowed.allows("http", "self", None)


def test_self_alt_allows_relative() -> None:
    assert hosts("http://self.alt").allows_self()


def test_any_host_allows_self() -> None:
    assert hosts("*://*:*").allows_self()


def test_specific_host_not_self() -> None:
    assert not hosts("https://api.example.com").allows_self()


def test_self_needs_http_scheme() -> None:
    assert not hosts("postgres://self").allows_self()


def test_empty_list_denies() -> None:
    allowed = hosts()
    assert not allowed.allows("https", "example.com", None)
    assert not allowed.allows_self()


def test_template_rendered() -> None:
    rendered: list[str] = []

    def render(template: str) -> str:
        rendered.append(template)
        return template.replace("{{ db_host }}", "db.internal")

    allowed = AllowedHosts.parse(["postgres://{{ db_host }}:6543"], render)
    assert rendered == ["postgres://{{ db_host }}:6543"]
    assert allowed.allows("postgres", "db.internal", 6543)
    assert not allowed.allows("postgres", "{{ db_host }}", 6543)


def test_template_error_names_entry() -> None:
    def render(template: str) -> str:
        raise KeyError("db_host")

    with pytest.raises(AllowedHostsError, match=r"postgres://\{\{ db_host \}\}"):
        AllowedHosts.parse(["postgres://{{ db_host }}"], render)


def test_template_rendering_invalid() -> None:
    with pytest.raises(AllowedHostsError, match="rendered as 'db.internal'"):
        AllowedHosts.parse(["{{ db_host }}"], lambda template: "db.internal")


# --- rejected entries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("example.com", "has no scheme"),
        ("localhost:3001", "has no scheme"),
        ("self", "http://self"),
        ("*", "not a host pattern"),
        ("", "not a host pattern"),
        ("http://example.com/a", "has a path"),
        ("http://example.com:6666/a/b", "has a path"),
        ("http://*.example.com/a", "has a path"),
        ("http://[::1]", "is not a number"),
        ("http://example.com:http", "is not a number"),
        ("http://example.com:70000", "is not a number"),
        ("http://example.com:1..x", "is not a number"),
        ("tcp://example.com", "no well-known port"),
        ("*://127.0.0.0/24", "no well-known port"),
        ("ht1p://example.com", "letters only"),
        ("http://a.*.example.com", "first label"),
        ("http://*.*.example.com", "first label"),
        ("http://ex*ample.com", "first label"),
        ("{http,https}://example.com", "scheme lists"),
        ("http://{a,b}", "host lists"),
        ("http://example.com:{80,81}", "port lists"),
        ("insecure:allow-all", "\\*://\\*:\\*"),
    ],
)
def test_invalid_entry_rejected(entry: str, message: str) -> None:
    with pytest.raises(AllowedHostsError, match=message):
        hosts(entry)


def test_error_names_entry() -> None:
    with pytest.raises(AllowedHostsError, match="'db.example.com:5432'"):
        hosts("https://ok.example.com", "db.example.com:5432")


# --- URLs and connection strings --------------------------------------------------------


def test_allows_url_full() -> None:
    allowed = hosts("https://api.example.com", "http://example.com:8383")
    assert allowed.allows_url("https://api.example.com/v1/users?x=1")
    assert allowed.allows_url("http://example.com:8383/foo/bar")
    assert not allowed.allows_url("http://example.com/")
    assert not allowed.allows_url("https://evil.example.net/")


def test_allows_url_default_scheme() -> None:
    allowed = hosts("mysql://xyz.com")
    assert allowed.allows_url("xyz.com:3306", default_scheme="mysql")
    assert allowed.allows_url("mysql://user:pass@xyz.com")


def test_allows_url_unparsable() -> None:
    allowed = hosts("*://*:*")
    assert not allowed.allows_url("not a url")
    assert not allowed.allows_url("http://example.com:99999")


def test_parse_url_ipv6() -> None:
    assert parse_url("http://[::1]:8001/x") == ("http", "[::1]", 8001)


def test_postgres_url_allowed() -> None:
    allowed = hosts("postgres://db.example.com")
    assert allowed.allows_postgres("postgres://app:secret@db.example.com/app")
    assert allowed.allows_postgres("postgres://app:secret@db.example.com:5432/app")
    assert not allowed.allows_postgres("postgres://app:secret@db.example.com:5433/app")
    assert not allowed.allows_postgres("postgres://app@other.example.com/app")


def test_postgres_keyword_string() -> None:
    allowed = hosts("postgres://127.0.0.1:5432")
    assert allowed.allows_postgres("host=127.0.0.1 port=5432 dbname=test user=postgres")
    assert allowed.allows_postgres("host=127.0.0.1 dbname=test")
    assert not allowed.allows_postgres("host=127.0.0.2 dbname=test")


def test_postgres_every_host_checked() -> None:
    allowed = hosts("postgres://a.example.com")
    assert not allowed.allows_postgres("host=a.example.com,b.example.com dbname=x")


def test_postgres_ports_by_position() -> None:
    assert postgres_addresses("host=a,b port=1,2") == [("a", 1), ("b", 2)]
    assert postgres_addresses("host=a,b port=7") == [("a", 7), ("b", 7)]
    assert postgres_addresses("host=a,b,c port=1,2") == [("a", 1), ("b", 2), ("c", None)]


def test_postgres_ipv6_bracketed() -> None:
    assert postgres_addresses("postgres://u@[::1]:5432/x") == [("[::1]", 5432)]


def test_postgres_unix_socket_rejected() -> None:
    with pytest.raises(ValueError, match="Unix sockets"):
        postgres_addresses("host=/var/run/postgresql dbname=x")


def test_postgres_missing_host_rejected() -> None:
    with pytest.raises(ValueError, match="names no host"):
        postgres_addresses("postgres:///x")


def test_postgres_garbage_rejected() -> None:
    with pytest.raises(ValueError, match="invalid connection string"):
        postgres_addresses("nonsense")


@pytest.mark.parametrize(
    "conn_str",
    [
        "postgres://user:s3cret@[::1/db",  # libpq quotes the whole URL
        "postgres://user:s3c%zzret@host/db",  # libpq quotes the bad token
        "postgres://user:s3c ret@host/db",  # libpq quotes the text with the space
    ],
)
def test_postgres_parse_error_hides_password(conn_str: str) -> None:
    with pytest.raises(ValueError, match="invalid connection string") as raised:
        postgres_addresses(conn_str)
    assert "s3c" not in str(raised.value)
