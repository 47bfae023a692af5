"""Load and check a Spin application manifest (`spin.toml`, `spin_manifest_version = 2`).

The checks follow Spin's manifest crate (`crates/manifest`, `crates/serde/src/id.rs`,
`crates/routes`) where Spin rejects a manifest, so an app that loads here also loads in
`spin up`. Every error names the file, the field and what to change.

Differences from Spin, on purpose:
- two triggers with the same route are an error here; Spin logs an error and lets the
  later one win, which leaves the earlier component unreachable.
- component sources must be local files; `{ url, digest }` and registry sources are
  rejected because this runtime never downloads anything.
- triggers other than `http`, Wagi executors, `components = {...}`, component
  `dependencies` and `files` are rejected, because the runtime cannot honour them.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spinlocal.variables import VariableError, parse_template, variable_name_problem

log = logging.getLogger(__name__)

WELL_KNOWN_PREFIX = "/.well-known/spin/"
SUPPORTED_MANIFEST_VERSION = 2

_TOP_LEVEL_KEYS = {"spin_manifest_version", "application", "variables", "trigger", "component"}
_APPLICATION_KEYS = {"name", "version", "description", "authors", "targets", "trigger", "tool"}
_VARIABLE_KEYS = {"default", "required", "secret", "description"}
_HTTP_TRIGGER_KEYS = {"route", "component", "components", "executor", "id"}
_COMPONENT_KEYS = {
    "source",
    "description",
    "variables",
    "environment",
    "files",
    "exclude_files",
    "allowed_http_hosts",
    "allowed_outbound_hosts",
    "key_value_stores",
    "sqlite_databases",
    "ai_models",
    "targets",
    "build",
    "tool",
    "dependencies",
    "dependencies_inherit_configuration",
}
_BUILD_KEYS = {"command", "workdir", "watch"}
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class ManifestError(Exception):
    """The manifest cannot be loaded; the message names the file, the field and the fix."""

    def __init__(self, path: Path, field: str | None, message: str) -> None:
        location = f"{path}: {field}" if field else str(path)
        super().__init__(f"{location}: {message}")
        self.path = path
        self.field = field


@dataclass(frozen=True)
class VariableSpec:
    """An application variable declared in `[variables]`."""

    name: str
    default: str | None = None
    required: bool = False
    secret: bool = False
    description: str = ""


@dataclass(frozen=True)
class BuildSpec:
    """A component's `[component.<id>.build]`: shell commands run in `workdir` in order."""

    command: tuple[str, ...]
    workdir: Path  # absolute; the manifest's folder unless `workdir` is set
    watch: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComponentSpec:
    id: str
    source: Path  # absolute path of the .wasm file
    environment: dict[str, str]
    allowed_outbound_hosts: tuple[str, ...]  # as written, templates not yet rendered
    key_value_stores: tuple[str, ...]
    sqlite_databases: tuple[str, ...]
    variables: dict[str, str]  # component variable -> template, e.g. "{{ auth_domain }}"
    build: BuildSpec | None


@dataclass(frozen=True)
class HttpTrigger:
    """One `[[trigger.http]]`: a route (None when private) served by a component."""

    id: str
    component: str
    route: str | None
    private: bool = False


@dataclass(frozen=True)
class AppManifest:
    """A loaded and checked manifest."""

    path: Path  # absolute path of spin.toml
    root: Path  # the folder containing spin.toml; relative paths start here
    name: str
    version: str
    description: str
    variables: dict[str, VariableSpec]
    components: dict[str, ComponentSpec]
    http_triggers: list[HttpTrigger]
    http_base: str = "/"  # `[application.trigger.http] base`


def load_manifest(path: Path | str, *, check_sources: bool = True) -> AppManifest:
    """Read, check and return the manifest at `path`.

    With `check_sources` (the default) every component's `.wasm` file must exist;
    `spinlocal build` loads with `check_sources=False` because it creates them.
    """
    manifest_path = Path(path).resolve()
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            manifest_path, None, "file not found. Pass the manifest's path with -f/--file"
        ) from None
    except UnicodeDecodeError as error:
        raise ManifestError(
            manifest_path,
            None,
            f"not valid UTF-8 ({error.reason} at byte {error.start}). Save the file as UTF-8",
        ) from None
    except OSError as error:
        raise ManifestError(manifest_path, None, f"cannot read the file: {error}") from error

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(
            manifest_path, None, f"invalid TOML: {error}. Fix the syntax at that position"
        ) from error

    return _Loader(manifest_path, document, check_sources).load()


def kebab_id_problem(value: str) -> str | None:
    """Return why `value` is not a Spin kebab-case id (like a component id), or None."""
    if not value:
        return "must not be empty"
    if "_" in value:
        return "words must be separated with '-', not '_'"
    for index, word in enumerate(value.split("-")):
        if not word:
            return "'-'-separated words must not be empty"
        first = word[0]
        if not (first.isascii() and (first.isalpha() or (index > 0 and first.isdigit()))):
            return (
                "each word must start with an ASCII letter, or a digit after the first word. "
                f"Got {first!r}"
            )
        upper = first.isupper()
        for char in word[1:]:
            if char.isdigit() or char == ":":
                continue
            if not (char.isascii() and char.isalnum()):
                return f"words may contain only ASCII letters and digits. Got {char!r}"
            if char.isupper() != upper:
                return f"each word must be all lowercase or all uppercase. Got {word!r}"
    return None


def route_problem(route: str) -> str | None:
    """Return why `route` is not a valid HTTP trigger route, or None when it is valid."""
    if not route.startswith("/"):
        return "must start with '/'"
    if "?" in route or "#" in route:
        return "must be a path only, without '?' or '#'"
    body = route[1:]
    body = body.removesuffix("/")
    if not body:
        return None
    segments = body.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "":
            return "must not contain an empty segment ('//')"
        if segment == "...":
            if not last:
                return "the wildcard '/...' may only end the route"
            continue
        if "..." in segment and segment != "...":
            return f"segment {segment!r} mixes '...' with other text. Write '/...' as a segment"
        if segment == "*":
            if not last:
                return "the wildcard '/*' may only end the route"
            continue
        if "*" in segment:
            return f"segment {segment!r} contains '*'. A wildcard is a whole final segment"
        if segment.startswith(":"):
            name = segment[1:]
            if not name:
                return "a ':' parameter must be named, e.g. ':id'"
            if not _PARAM_NAME.match(name):
                return (
                    f"parameter {segment!r} may contain only letters, digits and '_', "
                    "and must fill the whole segment"
                )
        elif ":" in segment:
            return f"segment {segment!r} contains ':'. A parameter fills a whole segment"
    return None


def normalize_base(base: str) -> str:
    """Return the base path with one leading and no trailing slash ("/" stays "/")."""
    stripped = base.strip("/")
    return "/" + stripped if stripped else "/"


def join_base(base: str, route: str) -> str:
    """Return `route` prefixed with `base` the way Spin's router combines them.

    Spin strips one trailing slash from each and concatenates, so base "/" and route
    "/" give "", which the router treats as the root.
    """
    route = route if route.startswith("/") else "/" + route
    return base.removesuffix("/") + route.removesuffix("/")


class _Loader:
    """One load of one manifest document; methods raise ManifestError on the first problem."""

    def __init__(self, path: Path, document: dict[str, Any], check_sources: bool) -> None:
        self.path = path
        self.root = path.parent
        self.doc = document
        self.check_sources = check_sources
        self.base = "/"

    def error(self, field: str | None, message: str) -> ManifestError:
        return ManifestError(self.path, field, message)

    def load(self) -> AppManifest:
        self._check_version()
        self._check_keys(self.doc, _TOP_LEVEL_KEYS, None)

        application = self._table(self.doc.get("application"), "application", required=True)
        self._check_keys(application, _APPLICATION_KEYS, "application")
        name = self._string(application.get("name"), "application.name", required=True)
        version = self._string(application.get("version"), "application.version") or ""
        description = self._string(application.get("description"), "application.description")
        base = self._http_base(application)
        self.base = base

        variables = self._variables()
        components = {
            component_id: self._component(component_id, table, variables)
            for component_id, table in self._table(self.doc.get("component"), "component").items()
        }
        triggers = self._http_triggers(components, variables)

        return AppManifest(
            path=self.path,
            root=self.root,
            name=name or "",
            version=version,
            description=description or "",
            variables=variables,
            components=components,
            http_triggers=triggers,
            http_base=base,
        )

    # --- generic field checks -----------------------------------------------------------

    def _check_version(self) -> None:
        if "spin_manifest_version" not in self.doc:
            if "spin_version" in self.doc:
                raise self.error(
                    "spin_version",
                    "this is a version 1 manifest, which is not supported. Convert it to "
                    "version 2 (`spin doctor` can do this) and set spin_manifest_version = 2",
                )
            raise self.error(
                "spin_manifest_version",
                "missing. Add `spin_manifest_version = 2` at the top of the file",
            )
        version = self.doc["spin_manifest_version"]
        if isinstance(version, bool) or version != SUPPORTED_MANIFEST_VERSION:
            raise self.error(
                "spin_manifest_version",
                f"unsupported value {version!r}. Only manifest version 2 is supported: "
                "set spin_manifest_version = 2",
            )

    def _check_keys(self, table: Mapping[str, Any], allowed: set[str], field: str | None) -> None:
        for key in table:
            if key not in allowed:
                where = f"{field}.{key}" if field else key
                raise self.error(
                    where,
                    f"unknown field {key!r}. Allowed fields here: {', '.join(sorted(allowed))}",
                )

    def _table(self, value: Any, field: str, *, required: bool = False) -> dict[str, Any]:
        if value is None:
            if required:
                raise self.error(field, f"missing. Add a [{field}] table")
            return {}
        if not isinstance(value, dict):
            raise self.error(field, f"must be a table, not {type(value).__name__}")
        return value

    def _string(self, value: Any, field: str, *, required: bool = False) -> str | None:
        if value is None:
            if required:
                raise self.error(field, "missing. Add it as a string")
            return None
        if not isinstance(value, str):
            raise self.error(field, f"must be a string, not {value!r}")
        return value

    def _bool(self, value: Any, field: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.error(field, f"must be true or false, not {value!r}")
        return value

    def _string_list(self, value: Any, field: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(field, f"must be a list of strings, not {value!r}")
        return tuple(value)

    def _string_map(self, value: Any, field: str) -> dict[str, str]:
        table = self._table(value, field)
        for key, item in table.items():
            if not isinstance(item, str):
                raise self.error(f"{field}.{key}", f"must be a string, not {item!r}")
        return dict(table)

    def _check_template(
        self, template: str, field: str, variables: Mapping[str, VariableSpec]
    ) -> None:
        try:
            parts = parse_template(template)
        except VariableError as error:
            raise self.error(field, f"{error.message}") from None
        for part in parts:
            if part.is_variable and part.text not in variables:
                raise self.error(
                    field,
                    f"refers to undeclared application variable {part.text!r}. Declare it "
                    f"in [variables] (e.g. {part.text} = {{ required = true }})",
                )

    # --- sections -----------------------------------------------------------------------

    def _http_base(self, application: Mapping[str, Any]) -> str:
        triggers = self._table(application.get("trigger"), "application.trigger")
        http = self._table(triggers.get("http"), "application.trigger.http")
        base = self._string(http.get("base"), "application.trigger.http.base")
        if base is None:
            return "/"
        if not base.startswith("/"):
            raise self.error("application.trigger.http.base", f"{base!r} must start with '/'")
        return normalize_base(base)

    def _variables(self) -> dict[str, VariableSpec]:
        result: dict[str, VariableSpec] = {}
        for name, table in self._table(self.doc.get("variables"), "variables").items():
            field = f"variables.{name}"
            problem = variable_name_problem(name)
            if problem is not None:
                raise self.error(field, f"invalid variable name {name!r}: {problem}")
            table = self._table(table, field)
            self._check_keys(table, _VARIABLE_KEYS, field)

            default = self._string(table.get("default"), f"{field}.default")
            required = self._bool(table.get("required"), f"{field}.required")
            secret = self._bool(table.get("secret"), f"{field}.secret")
            description = self._string(table.get("description"), f"{field}.description") or ""
            if required and default is not None:
                raise self.error(
                    field,
                    "has both `required = true` and a default. Remove one of them",
                )
            if not required and default is None:
                raise self.error(
                    field,
                    "has neither a default nor `required = true`. Add one of them",
                )
            result[name] = VariableSpec(name, default, required, secret, description)
        return result

    def _component(
        self, component_id: str, table: Any, variables: Mapping[str, VariableSpec]
    ) -> ComponentSpec:
        field = f"component.{component_id}"
        problem = kebab_id_problem(component_id)
        if problem is not None:
            raise self.error(
                field, f"invalid component id {component_id!r}: {problem} (use kebab-case)"
            )
        table = self._table(table, field)
        self._check_keys(table, _COMPONENT_KEYS, field)

        for unsupported in ("dependencies", "files"):
            if table.get(unsupported):
                raise self.error(
                    f"{field}.{unsupported}",
                    f"`{unsupported}` is not supported by spinlocal. Remove it or run the app "
                    "with `spin up`",
                )
        if table.get("ai_models"):
            log.warning("%s.ai_models is ignored: spinlocal has no AI models", field)
        hosts = self._string_list(
            table.get("allowed_outbound_hosts"), f"{field}.allowed_outbound_hosts"
        )
        legacy_hosts = self._string_list(
            table.get("allowed_http_hosts"), f"{field}.allowed_http_hosts"
        )
        if legacy_hosts:
            raise self.error(
                f"{field}.allowed_http_hosts",
                "is deprecated and not supported. List the hosts in allowed_outbound_hosts "
                'with a scheme, e.g. "https://example.com"',
            )
        for index, host in enumerate(hosts):
            self._check_template(host, f"{field}.allowed_outbound_hosts[{index}]", variables)

        component_variables = self._string_map(table.get("variables"), f"{field}.variables")
        for name, template in component_variables.items():
            problem = variable_name_problem(name)
            if problem is not None:
                raise self.error(
                    f"{field}.variables.{name}", f"invalid variable name {name!r}: {problem}"
                )
            self._check_template(template, f"{field}.variables.{name}", variables)

        build = self._build(table.get("build"), f"{field}.build")
        source = self._source(table.get("source"), f"{field}.source", build)
        return ComponentSpec(
            id=component_id,
            source=source,
            environment=self._string_map(table.get("environment"), f"{field}.environment"),
            allowed_outbound_hosts=hosts,
            key_value_stores=self._labels(
                table.get("key_value_stores"), f"{field}.key_value_stores"
            ),
            sqlite_databases=self._labels(
                table.get("sqlite_databases"), f"{field}.sqlite_databases"
            ),
            variables=component_variables,
            build=build,
        )

    def _labels(self, value: Any, field: str) -> tuple[str, ...]:
        labels = self._string_list(value, field)
        for label in labels:
            if not label:
                raise self.error(field, "labels must not be empty")
        return labels

    def _source(self, value: Any, field: str, build: BuildSpec | None) -> Path:
        if value is None:
            raise self.error(field, 'missing. Set it to the .wasm file, e.g. source = "app.wasm"')
        if isinstance(value, dict):
            kind = "a URL" if "url" in value else "a registry package"
            raise self.error(
                field,
                f"{kind} source is not supported: spinlocal runs local files only. Download "
                'the .wasm file and set source = "path/to/file.wasm"',
            )
        if not isinstance(value, str) or not value:
            raise self.error(field, f"must be a path string, not {value!r}")

        source = (self.root / value).resolve()
        if self.check_sources and not source.is_file():
            hint = (
                "run `spinlocal build` (or `spinlocal up --build`) to create it"
                if build is not None
                else "check the path, which is relative to the manifest's folder"
            )
            raise self.error(field, f"file {source} not found; {hint}")
        return source

    def _build(self, value: Any, field: str) -> BuildSpec | None:
        if value is None:
            return None
        table = self._table(value, field)
        self._check_keys(table, _BUILD_KEYS, field)
        command = table.get("command")
        if isinstance(command, str):
            commands: tuple[str, ...] = (command,)
        elif isinstance(command, list) and command and all(isinstance(c, str) for c in command):
            commands = tuple(command)
        else:
            raise self.error(
                f"{field}.command",
                f"must be a command string or a non-empty list of them, not {command!r}",
            )
        workdir_text = self._string(table.get("workdir"), f"{field}.workdir")
        workdir = (self.root / workdir_text).resolve() if workdir_text else self.root
        return BuildSpec(commands, workdir, self._string_list(table.get("watch"), f"{field}.watch"))

    def _http_triggers(
        self, components: dict[str, ComponentSpec], variables: Mapping[str, VariableSpec]
    ) -> list[HttpTrigger]:
        trigger_table = self._table(self.doc.get("trigger"), "trigger", required=True)
        for trigger_type in trigger_table:
            if trigger_type != "http":
                raise self.error(
                    f"trigger.{trigger_type}",
                    f"`{trigger_type}` triggers are not supported. spinlocal runs HTTP "
                    "triggers only ([[trigger.http]])",
                )
        entries = trigger_table.get("http")
        if entries is None:
            raise self.error("trigger.http", "missing. Add at least one [[trigger.http]]")
        if not isinstance(entries, list):
            raise self.error("trigger.http", "must be an array of tables: write [[trigger.http]]")

        explicit_ids = {e.get("id") for e in entries if isinstance(e, dict) and e.get("id")}
        counter = 1
        triggers: list[HttpTrigger] = []
        routes_seen: dict[str, str] = {}
        for index, entry in enumerate(entries):
            field = f"trigger.http[{index}]"
            entry = self._table(entry, field)
            self._check_keys(entry, _HTTP_TRIGGER_KEYS, field)
            if entry.get("components"):
                raise self.error(
                    f"{field}.components",
                    'is not supported. Name one component with `component = "<id>"`',
                )
            self._check_executor(entry.get("executor"), f"{field}.executor")

            trigger_id = self._string(entry.get("id"), f"{field}.id") or ""
            component_value = entry.get("component")
            if not trigger_id:
                if isinstance(component_value, str):
                    trigger_id = f"{component_value}-http-trigger"
                while not trigger_id or trigger_id in explicit_ids:
                    trigger_id = f"http-trigger{counter}"
                    counter += 1
                explicit_ids.add(trigger_id)

            component_id = self._trigger_component(
                component_value, f"{field}.component", trigger_id, components, variables
            )
            route, private = self._route(entry.get("route"), f"{field}.route")
            if route is not None:
                self._check_route_unique(route, component_id, routes_seen, f"{field}.route")
            triggers.append(HttpTrigger(trigger_id, component_id, route, private))
        return triggers

    def _check_executor(self, value: Any, field: str) -> None:
        if value is None:
            return
        table = self._table(value, field)
        executor_type = table.get("type")
        if executor_type in ("http", "spin"):
            return
        raise self.error(
            field,
            f"executor type {executor_type!r} is not supported. Remove `executor` "
            "(spinlocal runs wasi:http components)",
        )

    def _trigger_component(
        self,
        value: Any,
        field: str,
        trigger_id: str,
        components: dict[str, ComponentSpec],
        variables: Mapping[str, VariableSpec],
    ) -> str:
        if value is None:
            raise self.error(field, 'missing. Name the component, e.g. component = "my-api"')
        if isinstance(value, str):
            if value not in components:
                known = ", ".join(sorted(components)) or "none"
                raise self.error(
                    field,
                    f"names unknown component {value!r} (declared components: {known}); "
                    f"add [component.{value}] or fix the name",
                )
            return value
        if isinstance(value, dict):
            # Inline component: named like Spin names it, then stored with the others.
            component_id = f"{trigger_id}-component"
            counter = 1
            while kebab_id_problem(component_id) is not None or component_id in components:
                component_id = f"inline-component{counter}"
                counter += 1
            components[component_id] = self._component(component_id, value, variables)
            return component_id
        raise self.error(field, f"must be a component id or an inline table, not {value!r}")

    def _route(self, value: Any, field: str) -> tuple[str | None, bool]:
        if value is None:
            raise self.error(
                field, 'missing. Add e.g. route = "/api/..." or route = { private = true }'
            )
        if isinstance(value, dict):
            self._check_keys(value, {"private"}, field)
            if value.get("private") is True:
                return None, True
            raise self.error(
                field,
                "must be a string pattern or `{ private = true }`. `private` must be true",
            )
        if not isinstance(value, str):
            raise self.error(field, f'must be a string like "/api/...", not {value!r}')
        problem = route_problem(value)
        if problem is not None:
            raise self.error(field, f"invalid route {value!r}: {problem}")
        if join_base(self.base, value).startswith(WELL_KNOWN_PREFIX):
            raise self.error(
                field,
                f"route {value!r} is under {WELL_KNOWN_PREFIX}, which the runtime reserves "
                "for itself. Choose another path",
            )
        return value, False

    def _check_route_unique(
        self, route: str, component_id: str, seen: dict[str, str], field: str
    ) -> None:
        key = _route_key(route)
        previous = seen.get(key)
        if previous is not None:
            raise self.error(
                field,
                f"route {route!r} of component {component_id!r} duplicates the route of "
                f"component {previous!r}. Only one of them could ever be reached, so change one",
            )
        seen[key] = component_id


def _route_key(route: str) -> str:
    """Return the form under which two routes are the same route to the router."""
    key = route.rstrip("/") if route != "/" else route
    if key.endswith("/*"):
        key = key[:-2] + "/..."
    return key or "/"
