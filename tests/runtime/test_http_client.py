"""The host's outbound HTTP client against a local server."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from spinlocal.hosts.http import OutboundError, OutboundRequest
from spinlocal.http_client import HttpClient
from tests.runtime.wasi_probe_support import local_server


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with local_server() as url:
        yield url


def request(
    base: str,
    path: str,
    method: str = "GET",
    body: bytes = b"",
    first_byte_timeout: float | None = None,
) -> OutboundRequest:
    scheme, authority = base.split("://")
    headers = [("x-probe", b"1")]
    return OutboundRequest(
        method, scheme, authority, path, headers, body, first_byte_timeout=first_byte_timeout
    )


def test_get_returns_response(server: str) -> None:
    response = HttpClient().send(request(server, "/hello"))

    assert response.status == 200
    assert response.body == b"hello from /hello"
    assert ("x-seen-probe", b"1") in response.headers


def test_repeated_headers_are_kept(server: str) -> None:
    response = HttpClient().send(request(server, "/hello"))

    cookies = [value for name, value in response.headers if name == "set-cookie"]
    assert cookies == [b"a=1", b"b=2"]


def test_post_sends_body(server: str) -> None:
    response = HttpClient().send(request(server, "/post", "POST", b"data"))

    assert response.body == b"got:data"


def test_connections_are_reused(server: str) -> None:
    client = HttpClient()

    for _ in range(3):
        client.send(request(server, "/hello"))

    assert client.connections_opened == 1


def test_closed_connection_is_not_reused(server: str) -> None:
    client = HttpClient()

    client.send(request(server, "/close"))
    response = client.send(request(server, "/hello"))

    assert response.status == 200
    assert client.connections_opened == 2


def test_first_byte_timeout(server: str) -> None:
    with pytest.raises(OutboundError) as caught:
        HttpClient().send(request(server, "/slow?s=0.5", first_byte_timeout=0.1))

    assert caught.value.code.tag == "connection-read-timeout"


def test_connection_refused() -> None:
    with pytest.raises(OutboundError) as caught:
        HttpClient().send(request("http://127.0.0.1:9", "/"))

    assert caught.value.code.tag == "connection-refused"


def test_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)

    with pytest.raises(OutboundError) as caught:
        HttpClient().send(request("http://no-such-host.invalid", "/"))

    assert caught.value.code.tag == "DNS-error"


def test_response_over_limit(server: str) -> None:
    with pytest.raises(OutboundError) as caught:
        HttpClient(max_response_bytes=5).send(request(server, "/hello"))

    assert caught.value.code.tag == "HTTP-response-body-size"


def test_invalid_default_timeout() -> None:
    with pytest.raises(ValueError, match="default_timeout"):
        HttpClient(default_timeout=0)


def test_control_character_in_path(server: str) -> None:
    with pytest.raises(OutboundError) as caught:
        HttpClient().send(request(server, "/a b\r\n"))

    assert caught.value.code.tag == "HTTP-request-URI-invalid"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Serve the local handler over HTTPS with a self-signed certificate for 127.0.0.1."""
    cert_path = _self_signed_certificate(tmp_path_factory.mktemp("tls"))
    with local_server(certificate=cert_path) as url:
        yield url, cert_path


def _self_signed_certificate(directory: Path) -> Path:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / "server.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + certificate.public_bytes(serialization.Encoding.PEM)
    )
    return path


def test_https_with_trusted_certificate(tls_server: tuple[str, Path]) -> None:
    url, cert_path = tls_server
    context = ssl.create_default_context(cafile=str(cert_path))

    response = HttpClient(ssl_context=context).send(request(url, "/hello"))

    assert response.status == 200
    assert response.body == b"hello from /hello"


def test_https_untrusted_certificate(tls_server: tuple[str, Path]) -> None:
    url, _ = tls_server

    with pytest.raises(OutboundError) as caught:
        HttpClient().send(request(url, "/hello"))

    assert caught.value.code.tag == "TLS-certificate-error"
