"""FeatureGraph: the one source of truth for how features depend on each other.

Dagster deps, ``lineage``, ``plan``'s impact list and the lifecycle guards all read this object.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from featurestore_dagster.build.checks import check_specs
from featurestore_dagster.build.sandbox import glob_directory, is_glob
from featurestore_dagster.build.transformations import (
    PythonImportError,
    ensure_importable_root,
    function_source,
    render_sql,
)
from featurestore_dagster.config import Settings
from featurestore_dagster.definitions.cache import LoadCache
from featurestore_dagster.definitions.loader import collect_definitions
from featurestore_dagster.definitions.models import (
    RESERVED_SCHEMAS,
    STAGING_PREFIX,
    FeatureDefinition,
    FeatureStatus,
    RuleType,
    TransformationType,
)
from featurestore_dagster.definitions.sql import SqlError
from featurestore_dagster.errors import DefinitionError, DefinitionIssue, UnknownFeatureError

TABLE_PLACEHOLDER = re.compile(r"\{\{\s*table\s*\}\}")
# What ``{{ table }}`` stands for while a custom_sql rule is checked at load (at build time it
# is the quoted staging table).
CHECKED_TABLE = '"__featurestore_checked_table"'
CHECKED_REFERENCE = "main.__featurestore_checked_table"


class FeatureGraph:
    """Features by name with their upstream/downstream edges.

    Build it with ``FeatureGraph.load(folder)`` (parse + validate, all errors together) or
    ``FeatureGraph.from_definitions(definitions)``.

    Example:
        >>> graph = FeatureGraph.load(Path("feature_definitions"))
        >>> graph.downstream_closure("stock_daily_close")
        {'stock_daily_return', 'stock_rsi_14d', ...}
    """

    def __init__(self, definitions: Iterable[FeatureDefinition]):
        self._features: dict[str, FeatureDefinition] = {d.feature_name: d for d in definitions}
        self._children: dict[str, list[str]] = {name: [] for name in self._features}
        self._by_table: dict[str, str] | None = None
        #: Data fingerprints by feature, filled on first use (see ``data_fingerprint``).
        self.data_fingerprints: dict[str, str] = {}
        for name in sorted(self._features):
            for parent in self._features[name].upstream_features:
                if parent in self._children:
                    self._children[parent].append(name)

    def data_fingerprint(self, name: str) -> str:
        """The data fingerprint of feature ``name``, computed once per loaded graph.

        Plans, code versions and materialization records all ask for it; a python
        transformation's source is read from disk only the first time.
        """
        fingerprint = self.data_fingerprints.get(name)
        if fingerprint is None:
            from featurestore_dagster.definitions.fingerprint import data_fingerprint

            fingerprint = self.data_fingerprints[name] = data_fingerprint(self[name])
        return fingerprint

    def data_fingerprint_of(self, definition: FeatureDefinition) -> str:
        return self.data_fingerprint(definition.feature_name)

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def load(
        cls, folder: Path, *, check_python: bool = True, cache_path: Path | None = None
    ) -> FeatureGraph:
        """Load every definition under ``folder`` and validate the graph.

        Args:
            folder: the definitions folder.
            check_python: import python transformations to prove they resolve.
            cache_path: a JSON file caching SQL table references between loads.

        Raises:
            DefinitionError: every problem of the files and of the graph, together.
        """
        cache = LoadCache(cache_path)
        definitions, issues = collect_definitions(folder, cache=cache)
        graph = cls(definitions)
        invalid = _names_in(issues)
        issues.extend(graph.validate(check_python=check_python, ignore=invalid, cache=cache))
        if not issues:
            cache.save()
        if issues:
            raise DefinitionError(issues)
        return graph

    @classmethod
    def from_settings(cls, settings: Settings) -> FeatureGraph:
        """Load the configured definitions folder (python modules importable from the project
        root, SQL references cached beside the DuckDB file)."""
        ensure_importable_root(settings.project_root)
        return cls.load(settings.definitions_path, cache_path=settings.cache_path)

    @classmethod
    def from_definitions(
        cls, definitions: Iterable[FeatureDefinition], *, check_python: bool = True
    ) -> FeatureGraph:
        graph = cls(definitions)
        issues = graph.validate(check_python=check_python)
        if issues:
            raise DefinitionError(issues)
        return graph

    # --- lookup ------------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._features

    def __getitem__(self, name: str) -> FeatureDefinition:
        try:
            return self._features[name]
        except KeyError:
            raise UnknownFeatureError(name, list(self._features)) from None

    def __iter__(self) -> Iterator[FeatureDefinition]:
        return iter(self._features[name] for name in self.topological_order())

    def __len__(self) -> int:
        return len(self._features)

    @property
    def names(self) -> list[str]:
        return sorted(self._features)

    @property
    def compiled(self) -> list[FeatureDefinition]:
        """Features that become Dagster assets (every status but ``archived``), in build order."""
        return [d for d in self if d.status != FeatureStatus.ARCHIVED]

    @property
    def table_sources(self) -> list[str]:
        """Declared ``schema.table`` sources of compiled features, sorted."""
        return sorted({s for d in self.compiled for s in d.table_sources})

    def by_table(self) -> dict[str, str]:
        """Live table name (lower case) -> feature name."""
        if self._by_table is None:
            self._by_table = {d.table_name.lower(): n for n, d in self._features.items()}
        return self._by_table

    # --- edges ------------------------------------------------------------------------------

    def upstream(self, name: str) -> list[str]:
        """Direct upstream features, as declared."""
        return list(self[name].upstream_features)

    def downstream(self, name: str) -> list[str]:
        """Direct downstream features, sorted."""
        self[name]
        return list(self._children[name])

    def upstream_closure(self, name: str) -> set[str]:
        """Every feature ``name`` depends on, transitively (``name`` excluded)."""
        return self._closure([name], lambda n: self._features[n].upstream_features)

    def downstream_closure(self, name: str) -> set[str]:
        """Every feature depending on ``name``, transitively (``name`` excluded)."""
        return self._closure([name], lambda n: self._children.get(n, []))

    def with_upstream(self, names: Iterable[str]) -> list[str]:
        """``names`` plus everything they depend on, in build order."""
        selected = set()
        for name in names:
            selected |= self.upstream_closure(name) | {name}
        return self.topological_order(selected)

    def with_downstream(self, names: Iterable[str]) -> list[str]:
        """``names`` plus everything depending on them, in build order."""
        selected = set()
        for name in names:
            selected |= self.downstream_closure(name) | {name}
        return self.topological_order(selected)

    def _closure(self, start: list[str], edges) -> set[str]:
        for name in start:
            self[name]
        seen: set[str] = set()
        stack = list(start)
        while stack:
            for nxt in edges(stack.pop()):
                if nxt not in seen and nxt in self._features:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen - set(start)

    def topological_order(self, names: Iterable[str] | None = None) -> list[str]:
        """Names in dependency order (ties broken alphabetically, so the order is stable)."""
        subset = set(self._features) if names is None else set(names)
        indegree = {
            n: sum(1 for p in self._features[n].upstream_features if p in subset) for n in subset
        }
        ready = [n for n, degree in indegree.items() if degree == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            name = heapq.heappop(ready)
            order.append(name)
            for child in self._children.get(name, []):
                if child in subset:
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        heapq.heappush(ready, child)
        if len(order) != len(subset):  # only reachable on an unvalidated graph with a cycle
            order.extend(sorted(subset - set(order)))
        return order

    # --- validation -------------------------------------------------------------------------

    def validate(
        self,
        *,
        check_python: bool = True,
        ignore: set[str] | None = None,
        cache: LoadCache | None = None,
    ) -> list[DefinitionIssue]:
        """Every problem between definitions: missing, archived or cyclic upstreams, table
        collisions, SQL that reads undeclared tables or misses declared upstreams, python
        references that do not import. ``ignore`` names features already reported invalid."""
        ignore = ignore or set()
        cache = cache or LoadCache(None)
        issues: list[DefinitionIssue] = []
        issues += self._reference_issues(ignore)
        issues += self._cycle_issues()
        issues += self._table_issues()
        for definition in self._features.values():
            if definition.status != FeatureStatus.ARCHIVED:
                issues += self._transformation_issues(definition, check_python, cache)
                issues += self._custom_sql_issues(definition, cache)
        return issues

    def _reference_issues(self, ignore: set[str]) -> list[DefinitionIssue]:
        issues = []
        for d in self._features.values():
            if d.status == FeatureStatus.ARCHIVED:
                continue
            for parent in d.upstream_features:
                if parent in ignore:
                    continue
                if parent not in self._features:
                    issues.append(
                        _issue(
                            d, "upstream_features", f"upstream feature '{parent}' does not exist"
                        )
                    )
                elif self._features[parent].status == FeatureStatus.ARCHIVED:
                    issues.append(
                        _issue(
                            d,
                            "upstream_features",
                            f"upstream feature '{parent}' is archived; depend on a live feature"
                            " or archive this one too",
                        )
                    )
                elif parent == d.feature_name:
                    issues.append(
                        _issue(d, "upstream_features", "a feature cannot depend on itself")
                    )
        return issues

    def _cycle_issues(self) -> list[DefinitionIssue]:
        issues = []
        reported: set[frozenset[str]] = set()
        for cycle in self._find_cycles():
            key = frozenset(cycle)
            if key in reported:
                continue
            reported.add(key)
            first = self._features[cycle[0]]
            path = " -> ".join([*cycle, cycle[0]])
            issues.append(_issue(first, "upstream_features", f"dependency cycle: {path}"))
        return issues

    def _find_cycles(self) -> list[list[str]]:
        """Each cycle once, as a path starting at its alphabetically first member."""
        white, grey, black = 0, 1, 2
        color = dict.fromkeys(self._features, white)
        cycles = []
        for root in sorted(self._features):
            if color[root] != white:
                continue
            stack: list[tuple[str, Iterator[str]]] = [(root, iter(self._parents(root)))]
            path = [root]
            color[root] = grey
            while stack:
                node, parents = stack[-1]
                advanced = False
                for parent in parents:
                    if color[parent] == white:
                        color[parent] = grey
                        path.append(parent)
                        stack.append((parent, iter(self._parents(parent))))
                        advanced = True
                        break
                    if color[parent] == grey:
                        cycle = path[path.index(parent) :]
                        # Edges point child -> parent; show the data flow parent -> child.
                        cycle = list(reversed(cycle))
                        start = cycle.index(min(cycle))
                        cycles.append(cycle[start:] + cycle[:start])
                if not advanced:
                    color[node] = black
                    stack.pop()
                    path.pop()
        return cycles

    def _parents(self, name: str) -> list[str]:
        return sorted(p for p in self._features[name].upstream_features if p in self._features)

    def _table_issues(self) -> list[DefinitionIssue]:
        issues = []
        owners: dict[str, str] = {}
        readers: dict[str, str] = {}
        for name in sorted(self._features):
            for source in self._features[name].sources:
                readers.setdefault(source.lower(), name)
        for name in sorted(self._features):
            d = self._features[name]
            table = d.table_name.lower()
            if table in owners:
                issues.append(
                    _issue(
                        d,
                        "duckdb_table",
                        f"table {d.table_name} is already written by feature '{owners[table]}'",
                    )
                )
            owners.setdefault(table, name)
            reserved = reserved_table_problem(table)
            if reserved:
                field = "duckdb_table" if d.duckdb_table else "feature_name"
                issues.append(_issue(d, field, f"table {d.table_name}: {reserved}"))
            elif table in readers:
                issues.append(
                    _issue(
                        d,
                        "duckdb_table",
                        f"table {d.table_name} is a source of feature '{readers[table]}'; a"
                        " feature never writes its inputs",
                    )
                )
        for d in self._features.values():
            for source in d.file_sources:
                if is_glob(source) and Path(glob_directory(source)) in (Path(""), Path("/")):
                    issues.append(
                        _issue(
                            d,
                            "sources",
                            f"glob '{source}' must start with its directory (for example"
                            " data/prices/*.parquet): the build may read only that directory",
                        )
                    )
            for source in d.table_sources:
                reserved = reserved_table_problem(source.lower())
                if reserved:
                    issues.append(_issue(d, "sources", f"source {source}: {reserved}"))
                elif source.lower() in owners:
                    issues.append(
                        _issue(
                            d,
                            "sources",
                            f"'{source}' is the table of feature '{owners[source.lower()]}';"
                            " list it under upstream_features instead",
                        )
                    )
        return issues

    def _declared_inputs(self, d: FeatureDefinition) -> set[str]:
        """Lower-case tables ``d`` may read: its upstreams' tables and its table sources."""
        tables = {
            self._features[p].table_name.lower() for p in d.upstream_features if p in self._features
        }
        return tables | {s.lower() for s in d.table_sources}

    def _custom_sql_issues(self, d: FeatureDefinition, cache: LoadCache) -> list[DefinitionIssue]:
        """A ``custom_sql`` rule is one SELECT reading only ``{{ table }}`` and ``d``'s declared
        inputs, checked like a transformation (it runs on the same build connection)."""
        issues = []
        if not any(rule.rule_type == RuleType.CUSTOM_SQL for rule in d.validation_rules):
            return issues
        names = {id(spec.rule): spec.name for spec in check_specs(d) if spec.rule is not None}
        for index, rule in enumerate(d.validation_rules):
            if rule.rule_type != RuleType.CUSTOM_SQL:
                continue
            field = f"validation_rules[{index}].parameters.sql"
            prefix = f"custom_sql rule '{names[id(rule)]}'"
            sql = TABLE_PLACEHOLDER.sub(CHECKED_TABLE, str(rule.parameters.get("sql", "")))
            try:
                references = cache.references(sql)
            except SqlError as error:
                issues.append(_issue(d, field, f"{prefix}: {error}"))
                continue
            tables = set(references.tables) - {CHECKED_REFERENCE}
            for table in sorted(tables - self._declared_inputs(d)):
                issues.append(
                    _issue(
                        d,
                        field,
                        f"{prefix} reads undeclared table {table}; a rule reads {{{{ table }}}}"
                        " and the feature's upstream_features and sources only",
                    )
                )
            for path in sorted(references.files - set(d.file_sources)):
                issues.append(
                    _issue(d, field, f"{prefix} reads undeclared file '{path}'; add to sources")
                )
        return issues

    def _transformation_issues(
        self, d: FeatureDefinition, check_python: bool, cache: LoadCache
    ) -> list[DefinitionIssue]:
        if d.transformation.transformation_type == TransformationType.PYTHON:
            if not check_python:
                return []
            try:
                function_source(d.transformation.code)
            except PythonImportError as error:
                return [_issue(d, "transformation.code", str(error))]
            return []
        try:
            references = cache.references(render_sql(d))
        except SqlError as error:
            from featurestore_dagster.definitions.locate import located_sql_message

            return [
                _issue(d, "transformation.code", located_sql_message(error, d.path, d.feature_name))
            ]
        issues = []
        if d.lookahead is False and d.lookahead_reasons:
            issues.append(
                _issue(
                    d,
                    "lookahead",
                    "declared false, but the SQL can see the future: "
                    + "; ".join(d.lookahead_reasons)
                    + " (remove the field, or fix the SQL)",
                )
            )
        upstream_tables = {
            self._features[p].table_name.lower(): p
            for p in d.upstream_features
            if p in self._features
        }
        declared = set(upstream_tables) | {s.lower() for s in d.table_sources}
        # Upstreams already reported missing/invalid: do not also report their reads.
        declared |= {f"features.{p}" for p in d.upstream_features if p not in self._features}
        by_table = self.by_table()
        for table in sorted(references.tables - declared):
            hint = ""
            if table in by_table:
                hint = f"; it is feature '{by_table[table]}': add it to upstream_features"
            elif table.startswith("main.") and f"features.{table[5:]}" in by_table:
                hint = f"; did you mean features.{table[5:]}?"
            else:
                hint = "; declare it under sources (or upstream_features)"
            issues.append(
                _issue(d, "transformation.code", f"SQL reads undeclared table {table}{hint}")
            )
        for table, parent in sorted(upstream_tables.items()):
            if table not in references.tables:
                issues.append(
                    _issue(
                        d,
                        "upstream_features",
                        f"declared upstream '{parent}' is never read by the SQL"
                        f" (expected a read of {self._features[parent].table_name})",
                    )
                )
        declared_files = set(d.file_sources)
        for path in sorted(references.files - declared_files):
            issues.append(
                _issue(
                    d, "transformation.code", f"SQL reads undeclared file '{path}'; add to sources"
                )
            )
        return issues


def reserved_table_problem(table: str) -> str | None:
    """Why ``schema.table`` (lower case) lies in a namespace the store reserves, or None."""
    schema, _, name = table.partition(".")
    if schema in RESERVED_SCHEMAS:
        return f"schema '{schema}' is reserved for the store's own tables"
    if name.startswith(STAGING_PREFIX):
        return f"names starting with '{STAGING_PREFIX}' are reserved for build staging tables"
    return None


def _issue(d: FeatureDefinition, field: str, message: str) -> DefinitionIssue:
    return DefinitionIssue(message, file=d.path, feature=d.feature_name, field=field)


def _names_in(issues: list[DefinitionIssue]) -> set[str]:
    return {issue.feature for issue in issues if issue.feature}
