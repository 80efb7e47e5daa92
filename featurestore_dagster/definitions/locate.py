"""Where a definition's SQL sits in its YAML file, so an error inside the SQL names the line of
the file a person opens, not a line counted inside the SQL block."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from featurestore_dagster.definitions.sql import SqlError

_POSITION = re.compile(r"\.? ?Line \d+, Col: \d+\.?")


def sql_position_in_file(
    path: Path, feature_name: str, line: int, column: int | None = None
) -> tuple[int, int | None] | None:
    """The 1-based (line, column) in ``path`` of SQL position (``line``, ``column``) of the
    feature's ``transformation.code``; None when the file cannot be read that way."""
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    node = _code_node(root, feature_name)
    if node is None:
        return None
    if node.style in {"|", ">"}:
        # A block scalar: its content starts on the line after the indicator.
        file_line = node.start_mark.line + line + 1
        lines = text.splitlines()
        indent = 0
        if file_line - 1 < len(lines):
            current = lines[file_line - 1]
            indent = len(current) - len(current.lstrip())
        return file_line, (None if column is None else column + indent)
    offset = node.start_mark.column + (1 if node.style in {"'", '"'} else 0)
    if line == 1:
        return node.start_mark.line + 1, (None if column is None else column + offset)
    return node.start_mark.line + line, None


def located_sql_message(error: SqlError, path: Path | None, feature_name: str) -> str:
    """``error``'s message with its position as a line (and column) of the definition file."""
    message = str(error)
    if error.line is None or path is None:
        return message
    found = sql_position_in_file(Path(path), feature_name, error.line, error.column)
    if found is None:
        return message
    file_line, file_column = found
    where = f"line {file_line}" + (f", column {file_column}" if file_column else "")
    detail = _POSITION.sub("", message.removeprefix("SQL does not parse: ")).strip()
    return f"SQL does not parse at {where} of {Path(path).name}: {detail}"


def _code_node(root, feature_name: str):
    mappings = []
    if isinstance(root, yaml.MappingNode):
        features = _value(root, "features")
        if isinstance(features, yaml.SequenceNode):
            mappings = [n for n in features.value if isinstance(n, yaml.MappingNode)]
        else:
            mappings = [root]
    for mapping in mappings:
        name = _value(mapping, "feature_name")
        if isinstance(name, yaml.ScalarNode) and name.value == feature_name:
            transformation = _value(mapping, "transformation")
            if isinstance(transformation, yaml.MappingNode):
                code = _value(transformation, "code")
                return code if isinstance(code, yaml.ScalarNode) else None
    return None


def _value(mapping, key: str):
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
    return None
