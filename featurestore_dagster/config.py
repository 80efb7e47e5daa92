"""Where things live: definitions folder, registry URL, the lake (catalog + data path).

Precedence: explicit arguments, then environment variables, then ``[tool.featurestore]`` in the
project's ``pyproject.toml``, then defaults under ``.featurestore/`` in the project root.

The project root is found like git finds its repository: walking up from the working directory
to the first folder whose ``pyproject.toml`` has a ``[tool.featurestore]`` table or that holds a
``feature_definitions/`` folder. Outside any project nothing is created: ``ProjectNotFoundError``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from featurestore_dagster.errors import ConfigError, FeatureStoreError, ProjectNotFoundError

ENV_DEFINITIONS = "FEATURESTORE_DEFINITIONS"
ENV_REGISTRY_URL = "FEATURESTORE_REGISTRY_URL"
ENV_LAKE_CATALOG = "FEATURESTORE_LAKE_CATALOG"
ENV_LAKE_DATA = "FEATURESTORE_LAKE_DATA"
ENV_BOOTSTRAP = "FEATURESTORE_BOOTSTRAP"
STATE_DIR = ".featurestore"
DEFAULT_DEFINITIONS = "feature_definitions"
# Wave 1 kept feature tables in one DuckDB file; the lake replaced it.
RETIRED_ENV = "FEATURESTORE_DUCKDB_PATH"
RETIRED_KEYS = ("duckdb_path", "duckdb")
RETIRED_MESSAGE = (
    "{what} is no longer used: feature tables live in a DuckLake. Set the lake's catalog with"
    f" {ENV_LAKE_CATALOG} (or lake_catalog in [tool.featurestore]; default"
    f" sqlite:{STATE_DIR}/lake.sqlite) and its data folder with {ENV_LAKE_DATA} (or lake_data;"
    f" default {STATE_DIR}/lake/). A DuckDB file of raw data can be attached read-only with"
    ' [tool.featurestore] attach = {{name = "path.duckdb"}}.'
)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration.

    Attributes:
        project_root: the project folder (see the module docstring).
        definitions_path: folder of ``*.yaml`` definitions.
        registry_url: SQLAlchemy URL of the registry database.
        lake_catalog: the lake's catalog database: ``sqlite:PATH`` (absolute after loading)
            or a PostgreSQL URL (``postgresql://user@host/db``).
        lake_data: the folder the lake's Parquet data files are written to.
        attach: ``(name, path)`` of DuckDB files attached read-only as catalog ``name``.
        bootstrap: optional ``module:function`` called with the lake connection before
            each build (the bundled example loads its raw data into the lake with it).
    """

    project_root: Path
    definitions_path: Path
    registry_url: str
    lake_catalog: str
    lake_data: Path
    attach: tuple[tuple[str, Path], ...] = ()
    bootstrap: str | None = None

    @classmethod
    def load(
        cls,
        *,
        definitions_path: str | Path | None = None,
        registry_url: str | None = None,
        lake_catalog: str | None = None,
        lake_data: str | Path | None = None,
        start: Path | None = None,
        require_project: bool = True,
    ) -> Settings:
        """Resolve settings from arguments, environment, pyproject.toml and defaults.

        ``require_project=False`` (a Dagster component or resource inside a project that has
        no feature definitions yet) roots the settings at the nearest ``pyproject.toml``, or
        at ``start``, instead of refusing.

        Raises:
            ProjectNotFoundError: no project root above ``start`` (the working directory) and
                no definitions folder given explicitly.
        """
        start = (start or Path.cwd()).resolve()
        found = find_project_root(start)
        explicit = definitions_path or os.environ.get(ENV_DEFINITIONS)
        if found is not None:
            root, table = found
        elif explicit:
            # An explicit folder outside any project: its state lives beside that folder.
            root, table = _under(start, explicit).resolve().parent, {}
        elif not require_project:
            root = next(
                (f for f in [start, *start.parents] if (f / "pyproject.toml").is_file()), start
            )
            table = {}
        else:
            raise ProjectNotFoundError(
                f"not inside a featurestore project: neither {start} nor any folder above it has"
                " a pyproject.toml with a [tool.featurestore] table or a feature_definitions/"
                f" folder; run from your project (or set {ENV_DEFINITIONS})"
            )

        def pick(argument, env_name: str, *keys: str):
            if argument is not None:
                return argument
            if os.environ.get(env_name):
                return os.environ[env_name]
            return next((table[key] for key in keys if table.get(key)), None)

        # The first key is the documented one; the others are accepted spellings.
        definitions = pick(
            definitions_path, ENV_DEFINITIONS, "definitions", "definitions_path", "definitions_dir"
        )
        registry = pick(registry_url, ENV_REGISTRY_URL, "registry_url", "registry")
        refuse_retired_settings(table)
        catalog = pick(lake_catalog, ENV_LAKE_CATALOG, "lake_catalog")
        data = pick(lake_data, ENV_LAKE_DATA, "lake_data")
        bootstrap = os.environ.get(ENV_BOOTSTRAP, table.get("bootstrap")) or None

        definitions = _under(root, definitions or DEFAULT_DEFINITIONS)
        if not registry:
            registry = f"sqlite:///{_under(root, f'{STATE_DIR}/registry.db')}"
        return cls(
            project_root=root,
            definitions_path=definitions,
            registry_url=str(registry),
            lake_catalog=resolve_lake_catalog(root, catalog or f"sqlite:{STATE_DIR}/lake.sqlite"),
            lake_data=_under(root, data or f"{STATE_DIR}/lake"),
            attach=_attachments(root, table.get("attach")),
            bootstrap=bootstrap,
        )

    @property
    def cache_path(self) -> Path:
        """The SQL-reference cache, beside the lake's data folder."""
        return self.lake_data.parent / "cache" / "sql_references.json"

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def refuse_retired_settings(table: dict) -> None:
    """Wave 1's DuckDB-file settings, refused with a message naming the lake's settings."""
    if os.environ.get(RETIRED_ENV):
        raise ConfigError(RETIRED_MESSAGE.format(what=RETIRED_ENV))
    for key in RETIRED_KEYS:
        if key in table:
            raise ConfigError(RETIRED_MESSAGE.format(what=f"[tool.featurestore] {key}"))


def resolve_lake_catalog(root: Path, value: str) -> str:
    """``sqlite:relative/path`` -> ``sqlite:/absolute/path``; PostgreSQL URLs unchanged.

    Accepted: ``sqlite:PATH``, ``postgresql://...`` (also ``postgres://`` and
    ``postgresql+psycopg://``, the registry's spelling), ``postgres:<libpq string>``, each
    optionally prefixed ``ducklake:``.
    """
    text = str(value).strip()
    if text.startswith("ducklake:"):
        text = text[len("ducklake:") :]
    if text.startswith("sqlite:"):
        path = text[len("sqlite:") :]
        if path.startswith("///"):  # the SQLAlchemy spelling sqlite:///path
            path = path[2:]
        if not path:
            raise ConfigError(f"lake catalog '{value}' names no SQLite file")
        return f"sqlite:{_under(root, path)}"
    if text.startswith(("postgresql://", "postgres://", "postgresql+", "postgres:")):
        return text
    raise ConfigError(
        f"lake catalog '{value}' is neither sqlite:PATH nor a PostgreSQL URL"
        " (postgresql://user@host:5432/database)"
    )


def _attachments(root: Path, value) -> tuple[tuple[str, Path], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(
            '[tool.featurestore] attach must be a table of name = "path.duckdb" entries,'
            ' e.g. attach = {market = "data/market.duckdb"}'
        )
    import re

    for name in value:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name) or name in {
            "featurestore",
            "memory",
            "system",
            "temp",
            "features",
        }:
            raise ConfigError(
                f"[tool.featurestore] attach: '{name}' cannot name an attached catalog (use"
                " lowercase letters, digits and _; not featurestore, features, memory, system,"
                " temp)"
            )
    return tuple((name, _under(root, path)) for name, path in sorted(value.items()))


def _under(root: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def find_project_root(start: Path) -> tuple[Path, dict] | None:
    """The nearest folder at or above ``start`` that is a featurestore project, with its
    ``[tool.featurestore]`` table; None outside any project.

    A ``pyproject.toml`` without ``[tool.featurestore]`` (a parent monorepo, a library) does
    not stop the walk unless a ``feature_definitions/`` folder sits beside it.
    """
    start = start.resolve()
    for folder in [start, *start.parents]:
        table = _featurestore_table(folder / "pyproject.toml")
        if table is not None or (folder / DEFAULT_DEFINITIONS).is_dir():
            return folder, table or {}
    return None


def _featurestore_table(candidate: Path) -> dict | None:
    if not candidate.is_file():
        return None
    try:
        data = tomllib.loads(candidate.read_text())
    except tomllib.TOMLDecodeError as error:
        raise FeatureStoreError(f"{candidate}: invalid TOML: {error}") from None
    table = data.get("tool", {}).get("featurestore")
    return table if isinstance(table, dict) else None
