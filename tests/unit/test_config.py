"""Settings precedence, defaults and errors of `codethings.config`."""

from __future__ import annotations

import json
import logging

import pytest
from codethings.config import ConfigError, Settings, load_settings
from codethings.platform import MappingVariables, MemoryKeyValue

REQUIRED_ENV = {"AUTH_DOMAIN": "env.example.test", "AUTH_AUDIENCE": "env-audience"}


def load(
    store: dict[str, bytes] | None = None,
    variables: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    return load_settings(MemoryKeyValue(store), MappingVariables(variables), environ or {})


def test_settings_store_beats_variable():
    settings = load(
        store={"auth_domain": b"kv.example.test"},
        variables={"auth_domain": "var.example.test"},
        environ=REQUIRED_ENV,
    )
    assert settings.auth_domain == "kv.example.test"


def test_settings_variable_beats_environment():
    settings = load(variables={"auth_audience": "var-audience"}, environ=REQUIRED_ENV)
    assert settings.auth_audience == "var-audience"


def test_settings_environment_used_last():
    settings = load(environ=REQUIRED_ENV)
    assert settings.auth_domain == "env.example.test"


def test_settings_empty_store_value_falls_through():
    settings = load(
        store={"auth_domain": b""},
        variables={"auth_domain": "var.example.test"},
        environ=REQUIRED_ENV,
    )
    assert settings.auth_domain == "var.example.test"


def test_settings_empty_variable_falls_through():
    settings = load(variables={"auth_domain": ""}, environ=REQUIRED_ENV)
    assert settings.auth_domain == "env.example.test"


def test_settings_defaults_derived_from_domain():
    settings = load(environ=REQUIRED_ENV)
    assert settings.auth_issuer == "https://env.example.test/"
    assert settings.auth_jwks_url == "https://env.example.test/.well-known/jwks.json"
    assert settings.jwks_ttl_secs == 300
    assert settings.auth_max_validity_secs is None
    assert settings.db_url is None


def test_settings_explicit_issuer_and_jwks_url():
    settings = load(
        variables={
            "auth_issuer": "http://127.0.0.1:8765/",
            "auth_jwks_url": "http://127.0.0.1:8765/jwks",
        },
        environ=REQUIRED_ENV,
    )
    assert settings.auth_issuer == "http://127.0.0.1:8765/"
    assert settings.auth_jwks_url == "http://127.0.0.1:8765/jwks"


def test_settings_db_url_from_store():
    settings = load(store={"db_url": b"postgres://postgres@127.0.0.1/test"}, environ=REQUIRED_ENV)
    assert settings.db_url == "postgres://postgres@127.0.0.1/test"


def test_settings_integers_parsed():
    settings = load(
        variables={"jwks_ttl_secs": "60", "auth_max_validity_secs": "86400"}, environ=REQUIRED_ENV
    )
    assert settings.jwks_ttl_secs == 60
    assert settings.auth_max_validity_secs == 86400


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "10s"])
def test_settings_invalid_ttl_rejected(value: str):
    with pytest.raises(ConfigError) as caught:
        load(variables={"jwks_ttl_secs": value}, environ=REQUIRED_ENV)
    assert caught.value.key == "jwks_ttl_secs"
    assert "must be a positive integer" in caught.value.detail
    assert repr(value) not in caught.value.detail


def test_settings_invalid_max_validity_rejected():
    with pytest.raises(ConfigError) as caught:
        load(environ={**REQUIRED_ENV, "AUTH_MAX_VALIDITY_SECS": "forever"})
    assert caught.value.key == "auth_max_validity_secs"


@pytest.mark.parametrize("key", ["auth_domain", "auth_audience"])
def test_settings_missing_required_key(key: str):
    environ = {name: value for name, value in REQUIRED_ENV.items() if name != key.upper()}
    with pytest.raises(ConfigError) as caught:
        load(environ=environ)
    assert caught.value.key == key


def test_config_error_names_all_three_places():
    with pytest.raises(ConfigError) as caught:
        load(environ={"AUTH_AUDIENCE": "a"})
    detail = caught.value.detail
    assert "spin deploy --key-value auth_domain=" in detail
    assert "Spin variable `auth_domain`" in detail
    assert "SPIN_VARIABLE_AUTH_DOMAIN" in detail
    assert "environment variable `AUTH_DOMAIN`" in detail


def test_config_error_is_500_problem():
    with pytest.raises(ConfigError) as caught:
        load()
    status, headers, body = caught.value.to_response_parts()
    assert status == 500
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["setting"] == "auth_domain"


def test_config_error_logged(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.ERROR, logger="codethings.config"), pytest.raises(ConfigError):
        load()
    assert "auth_domain" in caplog.text


def test_config_error_hides_value_logs_it(caplog: pytest.LogCaptureFixture):
    with (
        caplog.at_level(logging.ERROR, logger="codethings.config"),
        pytest.raises(ConfigError) as caught,
    ):
        load(environ={**REQUIRED_ENV, "AUTH_DOMAIN": "https://idp.example.test/"})
    body = json.loads(caught.value.to_response_parts()[2])
    assert "idp.example.test" not in json.dumps(body)
    assert "must be a host name" in body["detail"]
    assert "--key-value auth_domain=" in body["detail"]
    assert "https://idp.example.test/" in caplog.text


def test_config_error_db_url_never_shown(caplog: pytest.LogCaptureFixture):
    store = {"db_url": b"postgres://app:hunter\xff2@db.example.test/app"}
    with (
        caplog.at_level(logging.DEBUG, logger="codethings.config"),
        pytest.raises(ConfigError) as caught,
    ):
        load(store=store, environ=REQUIRED_ENV)
    body = caught.value.to_response_parts()[2].decode("utf-8")
    assert caught.value.key == "db_url"
    assert "not valid UTF-8" in caught.value.detail
    for secret in ("hunter", "0xff", "db.example.test"):
        assert secret not in body
        assert secret not in caplog.text
    assert "db_url" in caplog.text


def test_settings_domain_with_scheme_rejected():
    with pytest.raises(ConfigError) as caught:
        load(environ={**REQUIRED_ENV, "AUTH_DOMAIN": "https://idp.example.test/"})
    assert caught.value.key == "auth_domain"


def test_settings_store_not_utf8_rejected():
    with pytest.raises(ConfigError) as caught:
        load(store={"auth_audience": b"\xff\xfe"}, environ=REQUIRED_ENV)
    assert caught.value.key == "auth_audience"


def test_settings_store_read_in_one_pass():
    store = MemoryKeyValue({"auth_domain": b"kv.example.test", "unrelated": b"x"})
    load_settings(store, MappingVariables(), REQUIRED_ENV)
    assert store.get_calls == 1


def test_settings_blank_store_value_falls_through():
    settings = load(store={"auth_domain": b"   "}, environ=REQUIRED_ENV)
    assert settings.auth_domain == "env.example.test"


def test_settings_values_stripped():
    settings = load(variables={"auth_audience": " code-things\n"}, environ=REQUIRED_ENV)
    assert settings.auth_audience == "code-things"
