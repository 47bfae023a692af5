"""Parse and match a component's `allowed_outbound_hosts`, the way Spin 3 does.

An entry has the form `scheme://host[:port]`:

- `scheme` is a word of letters, or `*` for any scheme.
- `host` is a name or IP address, `*` for any host, `*.example.com` for any subdomain of
  `example.com` (but not `example.com` itself), a CIDR block such as `10.0.0.0/8`, or
  `self` (also `self.alt`) for the app itself.
- `port` is a number, `*` for any port, or a range `start..end` whose end is excluded,
  as in Spin. Without a port, the scheme's well-known port applies: http 80, https 443,
  postgres 5432, mysql 3306, redis 6379 and mqtt 1883. Other schemes need a port.

An entry may contain `{{ variable }}` templates; they are rendered when the app loads.
An entry with a path (other than a single trailing `/`), without a scheme, or with a
malformed port raises `AllowedHostsError` at start-up.

The rules follow Spin's `crates/outbound-networking-config/src/allowed_hosts.rs`. One
difference: host names are compared without regard to case, because DNS names are case
insensitive and Spin's URL parser lower-cases the requested host anyway.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

WELL_KNOWN_PORTS: dict[str, int] = {
    "postgres": 5432,
    "mysql": 3306,
    "redis": 6379,
    "mqtt": 1883,
    "http": 80,
    "https": 443,
}

_SELF_HOSTS = ("self", "self.alt")
_MANIFEST_HELP = (
    "Entries have the form <scheme>://<host>[:<port>], with '*' allowed for each part, "
    "for example \"https://api.example.com\" or \"postgres://db.example.com:5432\"."
)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowedHostsError(ValueError):
    """An `allowed_outbound_hosts` entry is invalid; the message names it and the fix."""


@dataclass(frozen=True)
class PortRange:
    """Ports from `start` up to but excluding `end`, like Spin's `start..end` syntax."""

    start: int
    end: int

    def contains(self, port: int) -> bool:
        return self.start <= port < self.end


@dataclass(frozen=True)
class AllowedHost:
    """One parsed entry. `None` in `scheme`, `host` or `ports` means `*` (anything)."""

    original: str
    scheme: str | None
    host: str | None
    subdomain_suffix: str | None = None  # ".example.com" for "*.example.com"
    network: IpNetwork | None = None
    to_self: bool = False
    ports: tuple[int | PortRange, ...] | None = None

    def allows(self, scheme: str, host: str, port: int | None) -> bool:
        return self._allows_scheme(scheme) and self._allows_host(host) and self._allows_port(
            scheme, port
        )

    def allows_relative(self, schemes: Iterable[str]) -> bool:
        """Return whether this entry lets the app call itself by a relative URL."""
        scheme_ok = any(self._allows_scheme(scheme) for scheme in schemes)
        return scheme_ok and (self.to_self or self._is_any_host())

    def _is_any_host(self) -> bool:
        return (
            self.host is None
            and self.subdomain_suffix is None
            and self.network is None
            and not self.to_self
        )

    def _allows_scheme(self, scheme: str) -> bool:
        return self.scheme is None or self.scheme == scheme.lower()

    def _allows_host(self, host: str) -> bool:
        host = host.lower()
        if self.to_self:
            # Spin matches "self" only for relative URLs, never by host name.
            return False
        if self.subdomain_suffix is not None:
            return host.endswith(self.subdomain_suffix)
        if self.network is not None:
            try:
                address = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                return False
            return address.version == self.network.version and address in self.network
        return self.host is None or self.host == host

    def _allows_port(self, scheme: str, port: int | None) -> bool:
        if self.ports is None:
            return True
        if port is None:
            port = WELL_KNOWN_PORTS.get(scheme.lower())
            if port is None:
                return False
        for allowed in self.ports:
            if isinstance(allowed, PortRange):
                if allowed.contains(port):
                    return True
            elif allowed == port:
                return True
        return False


class AllowedHosts:
    """The parsed `allowed_outbound_hosts` of one component; an empty list allows nothing."""

    def __init__(self, entries: Iterable[AllowedHost] = ()) -> None:
        self.entries: tuple[AllowedHost, ...] = tuple(entries)

    @classmethod
    def parse(cls, entries: Iterable[str], render: Callable[[str], str]) -> AllowedHosts:
        """Render the `{{ variable }}` templates in `entries` and parse every entry.

        Raises `AllowedHostsError` for the first invalid entry, or when rendering one fails.
        """
        entries = list(entries)
        if "insecure:allow-all" in entries:
            raise AllowedHostsError(
                "invalid allowed_outbound_hosts entry \"insecure:allow-all\": Spin no longer "
                "accepts it. Use \"*://*:*\" to allow all outbound traffic, which disables "
                "all network sandboxing."
            )

        parsed = []
        for entry in entries:
            text = entry
            if "{{" in entry:
                try:
                    text = render(entry)
                except Exception as error:  # the renderer's own error type is not fixed here
                    raise AllowedHostsError(
                        f"invalid allowed_outbound_hosts entry {entry!r}: rendering its "
                        f"template failed: {error}. Define the variable in the manifest's "
                        f"[variables] table or through a variable provider."
                    ) from error
            parsed.append(parse_entry(text, source=entry))
        return cls(parsed)

    def allows(self, scheme: str, host: str, port: int | None) -> bool:
        """Return whether a connection to `scheme://host:port` is allowed.

        `port` None means the scheme's well-known port; `host` is a name, an IPv4
        address or a bracketed IPv6 address as it appears in a URL.
        """
        return any(entry.allows(scheme, host, port) for entry in self.entries)

    def allows_self(self, schemes: Iterable[str] = ("http", "https")) -> bool:
        """Return whether the component may call its own app (`http://self`, or any host)."""
        schemes = tuple(schemes)
        return any(entry.allows_relative(schemes) for entry in self.entries)

    def allows_url(self, url: str, default_scheme: str | None = None) -> bool:
        """Return whether `url` is allowed; an unparsable URL is not.

        A URL without a scheme (`db.example.com:5432`) is read with `default_scheme`,
        as Spin does when it checks a database address.
        """
        target = parse_url(url, default_scheme)
        if target is None:
            return False
        scheme, host, port = target
        return self.allows(scheme, host, port)

    def allows_postgres(self, conn_str: str) -> bool:
        """Return whether every host of a libpq connection string (URL or key=value) is allowed.

        Raises `ValueError` for a connection string libpq cannot parse, one without a
        host, or one that names a Unix socket.
        """
        return all(
            self.allows("postgres", host, port) for host, port in postgres_addresses(conn_str)
        )

    def __repr__(self) -> str:
        return f"AllowedHosts({[entry.original for entry in self.entries]!r})"


def parse_entry(entry: str, source: str | None = None) -> AllowedHost:
    """Parse one rendered entry; `source` is the entry as written, for error messages."""
    written = source if source is not None else entry
    text = entry.strip()

    def invalid(reason: str, fix: str = _MANIFEST_HELP) -> AllowedHostsError:
        described = repr(written) if written == entry else f"{written!r} (rendered as {entry!r})"
        return AllowedHostsError(f"invalid allowed_outbound_hosts entry {described}: {reason}. {fix}")

    scheme_text, separator, rest = text.partition("://")
    if not separator:
        if text in ("*", ":", "", "?"):
            raise invalid(
                "it is not a host pattern",
                "Use \"*://*:*\" to allow all outbound networking, or name hosts as "
                "<scheme>://<host>[:<port>].",
            )
        if text in _SELF_HOSTS:
            raise invalid("it has no scheme", "Write \"http://self\" to allow calls to the app itself.")
        raise invalid("it has no scheme", "Add one, for example \"https://\" or \"*://\".")

    host_text, colon, port_text = rest.rpartition(":")
    if not colon:
        host_text, port_text = rest, ""
    port_text, slash, path = port_text.partition("/")
    if slash and path:
        raise invalid("it has a path, which allowed hosts must not have", "Remove the path.")

    scheme = _parse_scheme(scheme_text, invalid)
    host = _parse_host(host_text, invalid)
    ports = _parse_ports(port_text, scheme_text, invalid)
    return AllowedHost(
        original=written,
        scheme=scheme,
        host=host.host,
        subdomain_suffix=host.subdomain_suffix,
        network=host.network,
        to_self=host.to_self,
        ports=ports,
    )


def _parse_scheme(text: str, invalid: Callable[..., AllowedHostsError]) -> str | None:
    if text == "*":
        return None
    if text.startswith("{"):
        raise invalid("scheme lists are not supported", "Write one entry per scheme.")
    if not text or not text.isalpha():
        raise invalid(f"the scheme {text!r} must consist of letters only")
    return text.lower()


class _HostPattern(NamedTuple):
    host: str | None
    subdomain_suffix: str | None = None
    network: IpNetwork | None = None
    to_self: bool = False


def _parse_host(text: str, invalid: Callable[..., AllowedHostsError]) -> _HostPattern:
    host = text.strip()
    if host == "*":
        return _HostPattern(None)
    if host in _SELF_HOSTS:
        return _HostPattern(host, to_self=True)
    if host.startswith("{"):
        raise invalid("host lists are not supported", "Write one entry per host.")

    if "/" in host:
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            network = None
        if network is not None:
            return _HostPattern(host, network=network)
        if host.split("/")[1]:
            raise invalid("it has a path, which allowed hosts must not have", "Remove the path.")

    if host.startswith("*."):
        domain = host[2:].rstrip("/")
        if "*" in domain:
            raise invalid("a wildcard is allowed only as the first label, as in \"*.example.com\"")
        return _HostPattern(host, subdomain_suffix="." + domain.lower())
    if "*" in host:
        raise invalid("a wildcard is allowed only as the first label, as in \"*.example.com\"")

    host = host.rstrip("/")
    if not host:
        raise invalid("the host is empty", "Name a host, or write \"*\" for any host.")
    return _HostPattern(host.lower())


def _parse_ports(
    text: str, scheme: str, invalid: Callable[..., AllowedHostsError]
) -> tuple[int | PortRange, ...] | None:
    if not text:
        default = WELL_KNOWN_PORTS.get(scheme.lower())
        if default is None:
            raise invalid(
                f"it has no port and the scheme {scheme!r} has no well-known port",
                "Add a port, for example \":8080\", or \":*\" for any port.",
            )
        return (default,)
    if text == "*":
        return None
    if text.startswith("{"):
        raise invalid("port lists are not supported", "Write a range such as \":8000..8100\".")

    start_text, dots, end_text = text.partition("..")
    if dots:
        start = _parse_port_number(start_text, text, invalid)
        end = _parse_port_number(end_text, text, invalid)
        return (PortRange(start, end),)
    return (_parse_port_number(text, text, invalid),)


def _parse_port_number(
    text: str, whole: str, invalid: Callable[..., AllowedHostsError]
) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise invalid(
            f"the port {whole!r} is not a number from 0 to 65535",
            "Write a port such as \":5432\", a range such as \":8000..8100\" or \":*\".",
        )
    return int(text)


def parse_url(url: str, default_scheme: str | None = None) -> tuple[str, str, int | None] | None:
    """Split `url` into (scheme, host, port), or return None if it has no host.

    IPv6 hosts keep their brackets, as in Spin's URL parser; `port` is None when the URL
    has none.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname and default_scheme is not None:
            parts = urllib.parse.urlsplit(f"{default_scheme}://{url}")
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not hostname or not parts.scheme:
        return None
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return parts.scheme.lower(), hostname.lower(), port


# libpq quotes the part of a connection string that it cannot parse.
_QUOTED_TEXT = re.compile(r'"[^"]*"')


def conninfo_error_message(error: ProgrammingError) -> str:
    """Return libpq's parse error for a connection string with every quoted part masked.

    libpq quotes the offending part of the string, sometimes the whole URL, and that part
    can contain the password, so this message is safe for logs and guest-visible errors.
    """
    return _QUOTED_TEXT.sub('"..."', str(error).strip())


def postgres_addresses(conn_str: str) -> list[tuple[str, int | None]]:
    """Return the (host, port) pairs a libpq connection string would connect to.

    Accepts `postgres://user:pass@host:port/db` URLs and `host=... port=...` strings. As in
    Spin, a host takes the port at the same position, or the only port if there is one.
    Raises `ValueError` when the string cannot be parsed, names no host, or names a Unix
    socket, which Spin does not support.
    """
    try:
        params = conninfo_to_dict(conn_str)
    except ProgrammingError as error:
        raise ValueError(f"invalid connection string: {conninfo_error_message(error)}") from error

    hosts = [h for h in str(params.get("host") or params.get("hostaddr") or "").split(",") if h]
    if not hosts:
        raise ValueError(
            "the connection string names no host; give one, as in "
            "postgres://user@db.example.com:5432/dbname or host=db.example.com"
        )
    ports_text = [p for p in str(params.get("port") or "").split(",") if p]
    try:
        ports = [int(p) for p in ports_text]
    except ValueError as error:
        raise ValueError(f"invalid port in connection string: {ports_text!r}") from error

    addresses: list[tuple[str, int | None]] = []
    for index, host in enumerate(hosts):
        if host.startswith(("/", "@")):
            raise ValueError("Unix sockets are not supported on WebAssembly")
        port: int | None = None
        if index < len(ports):
            port = ports[index]
        elif len(ports) == 1:
            port = ports[0]
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        addresses.append((host, port))
    return addresses
