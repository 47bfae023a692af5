"""Runtime configuration file parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from spinlocal.runtime_config import RuntimeConfigError, load_runtime_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runtime-config.toml"
    path.write_text(text)
    return path


def test_spin_store_relative_path(tmp_path: Path) -> None:
    config = load_runtime_config(
        write(tmp_path, '[key_value_store.default]\ntype = "spin"\npath = "data/kv.db"\n')
    )
    store = config.key_value_stores["default"]
    assert store.type == "spin"
    assert store.path == (tmp_path / "data" / "kv.db").resolve()


def test_redis_store(tmp_path: Path) -> None:
    config = load_runtime_config(
        write(tmp_path, '[key_value_store.cache]\ntype = "redis"\nurl = "redis://127.0.0.1:6379"\n')
    )
    assert config.key_value_stores["cache"].url == "redis://127.0.0.1:6379"


def test_sqlite_database(tmp_path: Path) -> None:
    config = load_runtime_config(
        write(tmp_path, '[sqlite_database.default]\ntype = "spin"\npath = "/tmp/x.db"\n')
    )
    assert config.sqlite_databases["default"].path == Path("/tmp/x.db")


def test_empty_file(tmp_path: Path) -> None:
    config = load_runtime_config(write(tmp_path, ""))
    assert config.key_value_stores == {}
    assert config.sqlite_databases == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[key_value_store.x]\ntype = "azure_cosmos"\n',
            "key_value_store.x.type: unsupported type",
        ),
        ('[key_value_store.x]\ntype = "redis"\n', "key_value_store.x.url: missing"),
        (
            '[key_value_store.x]\ntype = "redis"\nurl = "127.0.0.1:6379"\n',
            "key_value_store.x.url: invalid Redis URL '127.0.0.1:6379'",
        ),
        ('[key_value_store.x]\ntype = "spin"\n', "key_value_store.x.path: missing"),
        ('[sqlite_database.x]\ntype = "libsql"\n', "sqlite_database.x.type: unsupported type"),
        ('[sqlite_database.x]\ntype = "spin"\n', "sqlite_database.x.path: missing"),
        ('[key_value_store.x]\ntype = "spin"\npath = "a"\ncolour = 1\n', "colour: unknown field"),
        ("[llm_compute]\ntype = 'spin'\n", "[llm_compute] is not supported"),
        ("[mystery]\n", "unknown section [mystery]"),
        ("[key_value_store\n", "invalid TOML"),
    ],
)
def test_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(RuntimeConfigError) as caught:
        load_runtime_config(write(tmp_path, text))
    assert expected in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeConfigError, match="file not found"):
        load_runtime_config(tmp_path / "absent.toml")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeConfigError, match="cannot read the file"):
        load_runtime_config(tmp_path)


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "runtime-config.toml"
    path.write_bytes(b"\xff\xfe[key_value_store.default]\n")
    with pytest.raises(RuntimeConfigError, match="not valid UTF-8"):
        load_runtime_config(path)
