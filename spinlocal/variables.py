"""Application variables: name rules, `{{ name }}` templates and value providers.

Spin's rules, as in Spin's `crates/expressions` (lib.rs, template.rs):

- A variable name contains only lowercase ASCII letters, digits and underscores, starts
  with a letter, ends with a letter or digit, and never has two underscores in a row.
- A template is literal text with expressions in double braces. The text between `{{`
  and the next `}}` is the variable name, with surrounding whitespace ignored.

A value comes from the first provider that has one, in this order:

1. the environment variable `SPIN_VARIABLE_<NAME_IN_UPPER_CASE>`,
2. the same name in a `.env` file beside the manifest,
3. `spinlocal up --variable name=value` (also `name=@file` and `@file.json`/`@file.toml`),
4. the `default` declared in `[variables]`.

Values of variables declared `secret = true` are never logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinlocal.manifest import AppManifest, ComponentSpec, VariableSpec

log = logging.getLogger(__name__)

ENV_PREFIX = "SPIN_VARIABLE_"
DOTENV_NAME = ".env"

# Kinds match the cases of `fermyon:spin/variables@2.0.0`'s `error` variant.
VARIABLE_ERROR_KINDS = frozenset({"undefined", "invalid-name", "provider", "other"})


class VariableError(Exception):
    """Failure to validate, find or resolve a variable.

    `kind` is one of "undefined", "invalid-name", "provider" or "other", the error cases a
    component receives through `fermyon:spin/variables`.
    """

    def __init__(self, kind: str, message: str) -> None:
        if kind not in VARIABLE_ERROR_KINDS:
            raise ValueError(f"unknown VariableError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message


def variable_name_problem(name: str) -> str | None:
    """Return why `name` is not a valid Spin variable name, or None when it is valid."""
    if not name:
        return "must not be empty"
    for char in name:
        if not (("a" <= char <= "z") or ("0" <= char <= "9") or char == "_"):
            return (
                f"contains {char!r}. Variable names may contain only lowercase letters, "
                "digits and underscores"
            )
    if not ("a" <= name[0] <= "z"):
        return "must start with a lowercase letter"
    if name[-1] == "_":
        return "must end with a lowercase letter or a digit"
    if "__" in name:
        return "must not contain two underscores in a row"
    return None


def check_variable_name(name: str) -> None:
    """Raise VariableError("invalid-name") unless `name` follows Spin's name rules."""
    problem = variable_name_problem(name)
    if problem is not None:
        raise VariableError("invalid-name", f"invalid variable name {name!r}: {problem}")


@dataclass(frozen=True)
class TemplatePart:
    """A piece of a template: literal `text`, or the name of a variable when `is_variable`."""

    text: str
    is_variable: bool


def parse_template(template: str) -> list[TemplatePart]:
    """Split a `{{ name }}` template into literal and variable parts.

    Raises VariableError("other") for an unmatched `{{` and VariableError("invalid-name")
    for an expression that is not a valid variable name.
    """
    parts: list[TemplatePart] = []
    rest = template
    while rest:
        if rest.startswith("{{"):
            end = rest.find("}}", 2)
            if end < 0:
                raise VariableError(
                    "other", f"invalid template {template!r}: '{{{{' without a closing '}}}}'"
                )
            name = rest[2:end].strip()
            check_variable_name(name)
            parts.append(TemplatePart(name, is_variable=True))
            rest = rest[end + 2 :]
        else:
            start = rest.find("{{")
            if start < 0:
                start = len(rest)
            parts.append(TemplatePart(rest[:start], is_variable=False))
            rest = rest[start:]
    return parts


def template_variables(template: str) -> list[str]:
    """Return the variable names a template refers to, in order of appearance."""
    return [part.text for part in parse_template(template) if part.is_variable]


# --- providers -------------------------------------------------------------------------

_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")


def load_dotenv(path: Path) -> dict[str, str]:
    """Read a `.env` file of `NAME=value` lines; a missing file yields an empty dict.

    Supports `#` comments, an `export ` prefix, and single- or double-quoted values
    (double quotes understand `\\n`, `\\"` and `\\\\`).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise VariableError("provider", f"cannot read {path}: {error}") from error

    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if match is None:
            raise VariableError(
                "provider",
                f"{path}, line {number}: expected NAME=value. Fix or remove the line",
            )
        name, raw = match.group(1), match.group(2)
        values[name] = _dotenv_value(raw)
    return values


def _dotenv_value(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        inner = raw[1:-1]
        return inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
    comment = raw.find(" #")
    return raw[:comment].rstrip() if comment >= 0 else raw


def parse_variable_option(option: str, base_dir: Path | None = None) -> dict[str, str]:
    """Parse one `--variable` value into name/value pairs.

    Forms, as `spin up` accepts them: `name=value`; `name=@file` (the file's contents);
    `@file.json` or `@file.toml` (a map of names to string values). Relative file paths
    are resolved against `base_dir` (default: the current directory).
    """
    base = base_dir or Path.cwd()
    if option.startswith("@"):
        path = base / option[1:]
        if path.suffix not in (".json", ".toml"):
            raise VariableError(
                "provider",
                f"--variable {option!r}: a variable file must end in .json or .toml; "
                "use name=@file to read one variable's value from a file",
            )
        return _read_variable_map(path)

    name, sep, value = option.partition("=")
    if not sep:
        raise VariableError(
            "provider",
            f"--variable {option!r}: expected name=value, name=@file or @file.json",
        )
    name = name.strip()
    check_variable_name(name)
    if value.startswith("@"):
        path = base / value[1:]
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise VariableError(
                "provider", f"--variable {name}=@{value[1:]}: cannot read {path}: {error}"
            ) from error
    return {name: value}


def _read_variable_map(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise VariableError("provider", f"cannot read variable file {path}: {error}") from error

    try:
        data: object = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise VariableError("provider", f"invalid variable file {path}: {error}") from error

    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise VariableError(
            "provider", f"variable file {path} must map variable names to string values"
        )
    for name in data:
        check_variable_name(name)
    return dict(data)


def parse_variable_options(options: Iterable[str], base_dir: Path | None = None) -> dict[str, str]:
    """Merge several `--variable` values; a later value for the same name wins."""
    merged: dict[str, str] = {}
    for option in options:
        merged.update(parse_variable_option(option, base_dir))
    return merged


# --- resolver --------------------------------------------------------------------------


class VariableResolver:
    """Resolve application variables and the component variables built from them.

    Values are looked up once per name and cached, so every request of a worker gets the
    same values that were checked at start-up.
    """

    def __init__(
        self,
        specs: Mapping[str, VariableSpec],
        *,
        environ: Mapping[str, str] | None = None,
        dotenv: Mapping[str, str] | None = None,
        cli_values: Mapping[str, str] | None = None,
    ) -> None:
        self._specs = dict(specs)
        self._environ = dict(os.environ if environ is None else environ)
        self._dotenv = dict(dotenv or {})
        self._cli = dict(cli_values or {})
        self._cache: dict[str, tuple[str, str]] = {}

        for name in self._cli:
            if name not in self._specs:
                log.warning(
                    "--variable %s is ignored: the manifest's [variables] does not declare it",
                    name,
                )

    @classmethod
    def for_manifest(
        cls,
        manifest: AppManifest,
        cli_values: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> VariableResolver:
        """Create a resolver with the `.env` file beside the manifest as second provider."""
        return cls(
            manifest.variables,
            environ=environ,
            dotenv=load_dotenv(manifest.root / DOTENV_NAME),
            cli_values=cli_values,
        )

    def _lookup(self, name: str) -> tuple[str, str] | None:
        """Return (value, provider name) for a declared variable, or None if none has it."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached

        env_name = ENV_PREFIX + name.upper()
        spec = self._specs[name]
        found: tuple[str, str] | None = None
        if env_name in self._environ:
            found = (self._environ[env_name], f"environment variable {env_name}")
        elif env_name in self._dotenv:
            found = (self._dotenv[env_name], f"{DOTENV_NAME} file")
        elif name in self._cli:
            found = (self._cli[name], "--variable")
        elif spec.default is not None:
            found = (spec.default, "default")

        if found is not None:
            self._cache[name] = found
            shown = "(secret)" if spec.secret else repr(found[0])
            log.debug("variable %s = %s from %s", name, shown, found[1])
        return found

    def value(self, name: str) -> str:
        """Return the value of the application variable `name`."""
        check_variable_name(name)
        if name not in self._specs:
            raise VariableError(
                "undefined", f"variable {name!r} is not declared in the manifest's [variables]"
            )
        found = self._lookup(name)
        if found is None:
            raise VariableError("provider", _missing_message([name]))
        return found[0]

    def missing_required(self) -> list[str]:
        """Return the names of variables that have no value from any provider, sorted."""
        return sorted(name for name in self._specs if self._lookup(name) is None)

    def check_required(self) -> None:
        """Raise VariableError("provider") naming every variable that has no value."""
        missing = self.missing_required()
        if missing:
            raise VariableError("provider", _missing_message(missing))

    def render(self, template: str) -> str:
        """Expand every `{{ name }}` in `template` from the application variables."""
        pieces = []
        for part in parse_template(template):
            pieces.append(self.value(part.text) if part.is_variable else part.text)
        return "".join(pieces)

    def component_variable(self, component: ComponentSpec, name: str) -> str:
        """Return component variable `name` of `component`, its template rendered."""
        check_variable_name(name)
        template = component.variables.get(name)
        if template is None:
            raise VariableError(
                "undefined",
                f"component {component.id!r} has no variable {name!r}. Add it to "
                f"[component.{component.id}.variables]",
            )
        return self.render(template)

    def is_secret(self, name: str) -> bool:
        """Tell whether the application variable `name` is declared `secret = true`."""
        spec = self._specs.get(name)
        return spec is not None and spec.secret


def _missing_message(names: list[str]) -> str:
    listed = ", ".join(names)
    first = names[0]
    return (
        f"required variable{'s' if len(names) > 1 else ''} without a value: {listed}. "
        f"Set each one with the environment variable {ENV_PREFIX}<NAME> "
        f"(e.g. {ENV_PREFIX}{first.upper()}=...), a line {ENV_PREFIX}{first.upper()}=... "
        f"in the {DOTENV_NAME} file beside spin.toml, or --variable {first}=..."
    )
