"""Where things live: definitions folder, registry URL, DuckDB file (SPEC section 5).

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

from featurestore_dagster.errors import FeatureStoreError, ProjectNotFoundError

ENV_DEFINITIONS = "FEATURESTORE_DEFINITIONS"
ENV_REGISTRY_URL = "FEATURESTORE_REGISTRY_URL"
ENV_DUCKDB_PATH = "FEATURESTORE_DUCKDB_PATH"
ENV_BOOTSTRAP = "FEATURESTORE_BOOTSTRAP"
STATE_DIR = ".featurestore"
DEFAULT_DEFINITIONS = "feature_definitions"


@dataclass(frozen=True)
class Settings:
    """Resolved configuration.

    Attributes:
        project_root: the project folder (see the module docstring).
        definitions_path: folder of ``*.yaml`` definitions.
        registry_url: SQLAlchemy URL of the registry database.
        duckdb_path: the DuckDB file features are written to.
        bootstrap: optional ``module:function`` called with the DuckDB connection before
            each build (the bundled example generates its raw data with it).
    """

    project_root: Path
    definitions_path: Path
    registry_url: str
    duckdb_path: Path
    bootstrap: str | None = None

    @classmethod
    def load(
        cls,
        *,
        definitions_path: str | Path | None = None,
        registry_url: str | None = None,
        duckdb_path: str | Path | None = None,
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
        duckdb_file = pick(duckdb_path, ENV_DUCKDB_PATH, "duckdb_path", "duckdb")
        bootstrap = os.environ.get(ENV_BOOTSTRAP, table.get("bootstrap")) or None

        definitions = _under(root, definitions or DEFAULT_DEFINITIONS)
        duckdb_file = _under(root, duckdb_file or f"{STATE_DIR}/features.duckdb")
        if not registry:
            registry = f"sqlite:///{_under(root, f'{STATE_DIR}/registry.db')}"
        return cls(
            project_root=root,
            definitions_path=definitions,
            registry_url=str(registry),
            duckdb_path=duckdb_file,
            bootstrap=bootstrap,
        )

    @property
    def cache_path(self) -> Path:
        """The SQL-reference cache, beside the DuckDB file."""
        return self.duckdb_path.parent / "cache" / "sql_references.json"

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


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
