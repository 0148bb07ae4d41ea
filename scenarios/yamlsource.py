"""Read a scenario YAML file into plain data plus the line/column of every field.

Differences from `yaml.safe_load`, each to make errors clear instead of surprising:
- date-times stay strings (PyYAML would turn `2026-04-01T00:00:00+08:00` into a datetime
  and a bare date into a `date`), so the schema sees exactly what was written;
- a key written twice is an error (PyYAML silently keeps the last one);
- a key that is not text (e.g. `92: 7.12`) is an error;
- syntax errors become a Problem with file:line:column.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from scenarios.errors import Problem, format_path, show

Path_ = tuple[str | int, ...]
Positions = dict[Path_, tuple[int, int]]

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_STR = "tag:yaml.org,2002:str"


class _Loader(yaml.SafeLoader):
    """SafeLoader without the implicit timestamp type."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, path: Path_, positions: Positions, problems: list[Problem],
          file: str, ancestors: frozenset[int] = frozenset()) -> None:
    if id(node) in ancestors:  # `a: &x [*x]` makes a list that contains itself
        line, col = _mark(node)
        problems.append(Problem(file, format_path(path), "data without cycles",
                                "an alias (*name) inside the anchor (&name) it refers to", line, col))
        return
    ancestors = ancestors | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                line, col = _mark(key_node)
                what = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a complex key"
                problems.append(Problem(file, format_path(path), "field names that are text",
                                        f"key {what!r} (quote it or rename it)", line, col))
                continue
            key = key_node.value
            if key == "<<":  # merge key: its fields are checked where they are defined
                continue
            line, col = _mark(key_node)
            if key in seen:
                problems.append(Problem(file, format_path((*path, key)), "each field once",
                                        f"a second {key!r} (first on line {seen[key]})", line, col))
                continue
            seen[key] = line
            positions[(*path, key)] = (line, col)
            _walk(value_node, (*path, key), positions, problems, file, ancestors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            positions[(*path, index)] = _mark(item)
            _walk(item, (*path, index), positions, problems, file, ancestors)


# PyYAML's token names, in words (the usual cause is a wrong indentation)
_TOKENS = {
    "<block end>": "the end of the indented block (check the indentation)",
    "'?'": "a field name",
    "'-'": "a list item",
    "'<block mapping start>'": "the start of an indented block of fields",
    "'<block sequence start>'": "the start of an indented list",
    "<block mapping start>": "the start of an indented block of fields",
}


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
    problem = exc.problem or "malformed YAML"
    expected, found = "well-formed YAML", problem.removeprefix("found ")
    halves = re.fullmatch(r"expected (.*), but (?:found|got) (.*)", problem, re.DOTALL)
    if halves:  # PyYAML says "expected <block end>, but found '-'": keep its two halves
        expected, found = (_TOKENS.get(h, h) for h in halves.groups())
    if exc.context:
        where = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
        found += f" ({exc.context}{where})"
    return Problem(file, "YAML syntax", expected, found, line, col)


def parse_yaml(text: str, file: str) -> tuple[Any, Positions, list[Problem]]:
    """(data, positions, problems). On a syntax error data is None and problems says where."""
    loader = _Loader(text)
    positions: Positions = {}
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
        if node is None:
            return None, positions, problems
        positions[()] = _mark(node)
        _walk(node, (), positions, problems, file)
        if problems:
            return None, positions, problems
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        problems.append(_syntax_problem(exc, file))
        return None, positions, problems
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        # e.g. a document of aliases too deep to build, or an unhashable key PyYAML rejects late
        problems.append(Problem(file, "YAML syntax", "well-formed YAML", show(str(exc), 120)))
        return None, positions, problems
    finally:
        loader.dispose()
    return data, positions, problems


def locate(positions: Positions, path: Path_) -> tuple[int | None, int | None]:
    """Line and column of `path`, or of its nearest ancestor written in the file."""
    while True:
        if path in positions:
            return positions[path]
        if not path:
            return None, None
        path = path[:-1]
