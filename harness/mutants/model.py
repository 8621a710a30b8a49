"""What a mutant is, and the text edits that write one into a deployable file."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

# Artifact kinds, each with the unit test files that should notice a mutant of it (the fast tier).
RULES = "prometheus-rules"
PROBE_QUERIES = "probe-queries"
DASHBOARD = "grafana-dashboard"
ALERTMANAGER = "alertmanager"
COMPOSE = "compose"
PROBE_CODE = "probe-code"
KINDS = (RULES, PROBE_QUERIES, DASHBOARD, ALERTMANAGER, COMPOSE, PROBE_CODE)


@dataclass(frozen=True)
class Mutant:
    """One mutation of one deployable file.

    `id` is stable: the file, the operator, where (named by what the file names, a rule, a route,
    a service, a function; never a line number) and what changed. A file edited elsewhere keeps
    the ids of its unchanged parts.
    """

    path: str  # relative to the repository
    kind: str
    operator: str
    location: str
    change: str
    original: str  # the whole file before
    mutated: str  # the whole file after

    @property
    def id(self) -> str:
        return f"{self.path}::{self.operator}::{self.location}::{self.change}"

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.mutated.splitlines(keepends=True),
                f"a/{self.path}",
                f"b/{self.path}",
                n=1,
            )
        )


class MutationError(ValueError):
    """A mutant could not be written back faithfully (a bug of the generator, never ignored)."""


# --- text edits -------------------------------------------------------------------------------


def splice(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def line_span(text: str, index: int) -> tuple[int, int]:
    """The whole line holding `index`, with its newline."""
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return start, len(text) if end < 0 else end + 1


# --- YAML: nodes with their positions in the text ----------------------------------------------

Path = Sequence[str | int]
# libyaml when present: the generator parses each file several times per mutant.
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    return yaml.load(text, Loader=LOADER)  # a safe loader


def compose_yaml(text: str) -> yaml.Node:
    node = yaml.compose(text, Loader=LOADER)
    if node is None:
        raise MutationError("empty YAML document")
    return node


def node_at(root: yaml.Node, path: Path) -> yaml.Node:
    """The node at `path` (mapping keys and sequence indexes); merge keys are not followed."""
    node = root
    for step in path:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            found = [value for key, value in node.value if key.value == step]
            if not found:
                raise MutationError(f"no key {step!r} at {list(path)}")
            node = found[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            node = node.value[step]
        else:
            raise MutationError(f"cannot follow {step!r} at {list(path)}")
    return node


def key_node(root: yaml.Node, path: Path) -> yaml.Node:
    parent = node_at(root, path[:-1])
    assert isinstance(parent, yaml.MappingNode)
    (key,) = [key for key, _ in parent.value if key.value == path[-1]]
    return key


def value_at(data: Any, path: Path) -> Any:
    for step in path:
        data = data[step]
    return data


def scalar_text(value: str, style: str | None) -> str:
    """`value` as a YAML scalar in the original's style where that style can hold it."""
    if style == '"':
        return json.dumps(value)
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if "\n" not in value and value.strip() == value and value:
        try:
            if load(f"k: {value}") == {"k": value}:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def set_scalar(text: str, path: Path, value: str) -> str:
    """`text` with the scalar at `path` replaced by the string `value` (a block scalar stays a
    block scalar, with its indentation); checked by loading the result."""
    node = node_at(compose_yaml(text), path)
    if not isinstance(node, yaml.ScalarNode):
        raise MutationError(f"not a scalar at {list(path)}")
    start, end = node.start_mark.index, node.end_mark.index
    if node.style in ("|", ">"):
        span = text[start:end]
        first = text[text.find("\n", start) + 1 :]
        indent = " " * (len(first) - len(first.lstrip(" ")))
        trailing = span[len(span.rstrip()) :]
        body = "\n".join(indent + line if line else "" for line in value.rstrip("\n").split("\n"))
        new = "|\n" + body + trailing
    else:
        new = scalar_text(value, node.style)
    mutated = splice(text, start, end, new)
    loaded = value_at(load(mutated), path)
    if str(loaded) != value and loaded != load(f"k: {value}")["k"]:
        raise MutationError(f"{list(path)}: wrote {value!r}, reads {loaded!r}")
    return mutated


def content_end(node: yaml.Node) -> int:
    """Where a node's own text ends (a block collection's end mark is the next token's start)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False) or not node.value:
        return int(node.end_mark.index)
    last = node.value[-1]
    return content_end(last[1] if isinstance(last, tuple) else last)


def replace_node(text: str, path: Path, new: str, expected: Any) -> str:
    """`text` with the node at `path` written as `new` (flow style); must load as `expected`.
    A block collection becomes a flow one on its key's line."""
    root = compose_yaml(text)
    node = node_at(root, path)
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        mutated = splice(text, node.start_mark.index, node.end_mark.index, new)
    else:
        key = key_node(root, path)
        start = text.index(":", key.end_mark.index) + 1
        end = line_span(text, content_end(node) - 1)[1]
        mutated = splice(text, start, end, f" {new}\n")
    check(mutated, path, expected)
    return mutated


def delete_item(text: str, path: Path) -> str:
    """`text` without the block sequence item at `path` (a one-line item)."""
    node = node_at(compose_yaml(text), path)
    start, end = line_span(text, node.start_mark.index)
    if "\n" in text[node.start_mark.index : node.end_mark.index]:
        raise MutationError(f"item at {list(path)} spans lines")
    return splice(text, start, end, "")


def delete_entry(text: str, path: Path) -> str:
    """`text` without the mapping entry at `path` (its key line through its value's last line)."""
    root = compose_yaml(text)
    key, value = key_node(root, path), node_at(root, path)
    start = line_span(text, key.start_mark.index)[0]
    end = line_span(text, max(content_end(value) - 1, key.end_mark.index))[1]
    mutated = splice(text, start, end, "")
    parent = value_at(load(mutated), path[:-1])
    if path[-1] in parent:
        raise MutationError(f"{list(path)} still there")
    return mutated


def add_entry(text: str, path: Path, key: str, value_text: str, expected: Any) -> str:
    """`text` with `key: value_text` added first in the mapping at `path`."""
    node = node_at(compose_yaml(text), path)
    if not isinstance(node, yaml.MappingNode) or node.flow_style:
        raise MutationError(f"not a block mapping at {list(path)}")
    first_key = node.value[0][0]
    start = line_span(text, first_key.start_mark.index)[0]
    indent = " " * first_key.start_mark.column
    mutated = splice(text, start, start, f"{indent}{key}: {value_text}\n")
    check(mutated, [*path, key], expected)
    return mutated


def check(mutated: str, path: Path, expected: Any) -> None:
    loaded = value_at(load(mutated), path)
    if loaded != expected:
        raise MutationError(f"{list(path)}: expected {expected!r}, reads {loaded!r}")


def flow(items: Sequence[str]) -> str:
    return "[" + ", ".join(scalar_text(item, None) for item in items) + "]"
