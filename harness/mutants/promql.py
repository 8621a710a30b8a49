"""PromQL mutation operators: the nodes come from a real parser (`promql-parser`), the mutant is
written back as text.

The parser gives no source spans, so a mutant is built in three steps:

1. find the node to mutate by walking the parsed expression, and build the mutated expression
   with `promql_parser.transform` (the replacement node is parsed from the node's own printed
   form, changed in one place: an operator, a number, a function name, a range, a matcher);
2. print the original and the mutated expression with the parser's printer;
3. align the tokens of the original text with the tokens of the original's printed form (the same
   sequence, spacing and line breaks aside), and carry over only the tokens that differ between
   the two printed forms. The original's layout, line breaks and indentation stay as they were;
   only the mutated tokens change.

The result is parsed again and must print exactly as the mutated expression does; when the
alignment is impossible, the whole expression is re-printed instead (`Rewrite.reprinted`).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import promql_parser as pp

COMPARISONS = {">": ">=", ">=": ">", "<": "<=", "<=": "<", "==": "!=", "!=": "=="}
AGGREGATIONS = ("max", "sum", "min", "avg")
OVER_TIME = ("max_over_time", "min_over_time", "avg_over_time", "sum_over_time")
CLAMPS = ("clamp_min", "clamp_max")
MUTATED_VALUE_SUFFIX = "-mutant"


@dataclass(frozen=True)
class ExprMutant:
    """One mutation of one expression: what changed, and the expression's mutated text."""

    operator: str
    node: str  # ordinal of the node kind within the expression, e.g. "cmp#2"
    change: str  # what changed, e.g. "> 4 -> > 8"
    text: str
    reprinted: bool = False


class PromQLError(ValueError):
    """The expression does not parse, or a mutant cannot be written back faithfully."""


# --- tokens -------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>(?:[0-9]+(?:ms|s|m|h|d|w|y))+(?![A-Za-z0-9_:]))
  | (?P<number>0x[0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[=<>+\-*/%^(){}\[\],@:])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def key(self) -> tuple[str, Any]:
        """What makes two tokens the same, whatever their spelling (1e4 is 10000, 300s is 5m)."""
        if self.kind == "number":
            return (
                "number",
                float(int(self.text, 16) if self.text.startswith("0x") else self.text),
            )
        if self.kind == "duration":
            return ("duration", pp.parse_duration(self.text))
        return (self.kind, self.text)


def tokens(text: str) -> list[Token]:
    found = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise PromQLError(f"cannot tokenise {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            found.append(Token(kind, match.group(), match.start(), match.end()))
        position = match.end()
    return found


def printed(expr: Any) -> str:
    return str(expr.prettify())


def _splice(original: str, before: str, after: str) -> str | None:
    """`original` with the token changes that turn `before` into `after` (both printed by the
    parser); None when `original` and `before` are not the same token sequence."""
    source, old, new = tokens(original), tokens(before), tokens(after)
    if [t.key for t in source] != [t.key for t in old]:
        return None
    matcher = difflib.SequenceMatcher(None, [t.key for t in old], [t.key for t in new], False)
    result = original
    for tag, i1, i2, j1, j2 in reversed(matcher.get_opcodes()):
        if tag == "equal":
            continue
        replacement = after[new[j1].start : new[j2 - 1].end] if j2 > j1 else ""
        if i2 > i1:
            start, end = source[i1].start, source[i2 - 1].end
            if not replacement and (start == 0 or result[start - 1].isspace()):
                # A deleted run between blanks takes the blanks after it along.
                while end < len(result) and result[end] == " ":
                    end += 1
        else:  # an insertion before source[i1] (or at the end)
            start = end = source[i1].start if i1 < len(source) else len(original.rstrip())
            replacement = replacement + " " if i1 < len(source) else " " + replacement
        result = result[:start] + replacement + result[end:]
    trailing = original[len(original.rstrip()) :]
    return result.strip() + trailing


# --- walking with parents -----------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    index: int  # position in depth-first pre-order, as walk and transform visit nodes
    node: Any
    parent: Any


def sites(expr: Any) -> list[Site]:
    found: list[Site] = []
    stack: list[Any] = []

    def pre(node: Any) -> None:
        found.append(Site(len(found), node, stack[-1] if stack else None))
        stack.append(node)

    def post(node: Any) -> None:
        stack.pop()

    pp.walk(expr, pre, post)
    return found


def _replace(expr: Any, index: int, build: Callable[[Any], Any]) -> Any:
    """`expr` with the node at pre-order position `index` replaced by `build(node)`."""
    counter = [0]

    def pre(node: Any) -> Any:
        position = counter[0]
        counter[0] += 1
        if position == index:
            return build(node)
        return None

    return pp.transform(expr, pre_visit=pre)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _middle(node: Any) -> str:
    """The operator part of a binary expression's printed form: between its two operands."""
    whole, lhs, rhs = str(node), str(node.lhs), str(node.rhs)
    if not (whole.startswith(lhs) and whole.endswith(rhs)):
        raise PromQLError(f"cannot find the operator of {whole}")
    return whole[len(lhs) : len(whole) - len(rhs)]


def _with_op(node: Any, old: str, new: str) -> Any:
    middle = _middle(node)
    changed = re.sub(rf"(?<![=!<>]){re.escape(old)}(?![=~])", new, middle, count=1)
    return pp.parse(f"{node.lhs}{changed}{node.rhs}")


def _duration(delta: timedelta) -> str:
    return str(pp.display_duration(delta))


# --- the operators ------------------------------------------------------------------------------

Candidate = tuple[str, str, str, Callable[[Any], Any], int]  # operator, node, change, build, at


def _candidates(expr: Any, fixed_ranges: frozenset[timedelta]) -> Iterator[Candidate]:
    ordinal: dict[str, int] = {}

    def nth(kind: str) -> str:
        ordinal[kind] = ordinal.get(kind, 0) + 1
        return f"{kind}#{ordinal[kind]}"

    for site in sites(expr):
        node, parent = site.node, site.parent
        if isinstance(node, pp.BinaryExpr):
            op = str(node.op)
            if op in COMPARISONS:
                where = nth("cmp")
                flipped = COMPARISONS[op]
                yield (
                    "promql-comparison-flipped",
                    where,
                    f"{op} -> {flipped}",
                    functools.partial(_with_op, old=op, new=flipped),
                    site.index,
                )
            elif op == "or":
                where = nth("or")
                yield ("promql-or-branch-removed", where, "right branch removed", _lhs, site.index)
                yield ("promql-or-branch-removed", where, "left branch removed", _rhs, site.index)
        elif isinstance(node, pp.NumberLiteral) and isinstance(parent, pp.BinaryExpr):
            if str(parent.op) not in COMPARISONS:
                continue
            where = nth("threshold")
            value = float(node.val)
            for operator, new in (
                ("promql-threshold-up", value * 2 if value else 1.0),
                ("promql-threshold-down", value / 2 if value else -1.0),
            ):
                yield (
                    operator,
                    where,
                    f"{parent.op} {_number(value)} -> {parent.op} {_number(new)}",
                    functools.partial(_literal, _number(new)),
                    site.index,
                )
        elif isinstance(node, pp.AggregateExpr) and str(node.op) in AGGREGATIONS:
            where = nth("aggregation")
            op = str(node.op)
            for other in AGGREGATIONS:
                if other != op:
                    yield (
                        "promql-aggregation-swapped",
                        where,
                        f"{op} -> {other}",
                        functools.partial(_renamed, op, other),
                        site.index,
                    )
        elif isinstance(node, pp.Call) and node.func.name in OVER_TIME:
            where = nth("over_time")
            name = node.func.name
            for other in OVER_TIME:
                if other != name:
                    yield (
                        "promql-aggregation-swapped",
                        where,
                        f"{name} -> {other}",
                        functools.partial(_renamed, name, other),
                        site.index,
                    )
        elif isinstance(node, pp.Call) and node.func.name in CLAMPS:
            where = nth(node.func.name)
            yield (
                "promql-clamp-removed",
                where,
                f"{node.func.name}(x, {_number(node.args[1].val)}) -> x",
                _first_argument,
                site.index,
            )
        elif isinstance(node, pp.MatrixSelector) and node.range not in fixed_ranges:
            where = nth("range")
            old = _duration(node.range)
            for operator, new_range in (
                ("promql-range-halved", node.range / 2),
                ("promql-range-doubled", node.range * 2),
            ):
                new_text = _duration(new_range)
                yield (
                    operator,
                    where,
                    f"[{old}] -> [{new_text}]",
                    functools.partial(_ranged, old, new_text),
                    site.index,
                )
        elif isinstance(node, pp.VectorSelector):
            matchers = [m for m in node.matchers.matchers if m.name != "__name__"]
            if node.offset is not None or node.at is not None or node.matchers.or_matchers:
                continue
            in_matrix = isinstance(parent, pp.MatrixSelector)
            at = site.index - 1 if in_matrix else site.index
            for i, matcher in enumerate(matchers):
                where = nth("matcher")
                kept = [m for j, m in enumerate(matchers) if j != i]
                changed = [
                    pp.Matcher(m.op, m.name, m.value + MUTATED_VALUE_SUFFIX) if j == i else m
                    for j, m in enumerate(matchers)
                ]
                for operator, new_matchers, change in (
                    ("promql-matcher-dropped", kept, f"{matcher} dropped"),
                    (
                        "promql-matcher-value-changed",
                        changed,
                        f"{matcher} -> {changed[i]}",
                    ),
                ):
                    yield (
                        operator,
                        where,
                        change,
                        functools.partial(_rematched, node, new_matchers, in_matrix),
                        at,
                    )


def _literal(text: str, node: Any) -> Any:
    return pp.parse(text)


def _renamed(old: str, new: str, node: Any) -> Any:
    return pp.parse(new + str(node)[len(old) :])


def _first_argument(node: Any) -> Any:
    return node.args[0]


def _ranged(old: str, new: str, node: Any) -> Any:
    return pp.parse(_replace_suffix(str(node), f"[{old}]", new))


def _rematched(selector: Any, matchers: list[Any], in_matrix: bool, node: Any) -> Any:
    """`node` (the selector, or the range selector holding it) with `matchers`."""
    text = _selector(selector, matchers)
    return pp.parse(text + (f"[{_duration(node.range)}]" if in_matrix else ""))


def _lhs(node: Any) -> Any:
    return node.lhs


def _rhs(node: Any) -> Any:
    return node.rhs


def _replace_suffix(text: str, old: str, new: str) -> str:
    if not text.endswith(old):
        raise PromQLError(f"{text} does not end with {old}")
    return text[: -len(old)] + f"[{new}]"


def _selector(node: Any, matchers: list[Any]) -> str:
    listed = ",".join(str(m) for m in matchers)
    name = node.name or ""
    return f"{name}{{{listed}}}" if listed or not name else name


def mutate(text: str, *, fixed_ranges: frozenset[timedelta] = frozenset()) -> Iterator[ExprMutant]:
    """Every mutant of one PromQL expression, in a stable order. Ranges in `fixed_ranges` are
    template placeholders (the probe's `$window`) and are not mutated."""
    try:
        expr = pp.parse(text)
    except ValueError as error:
        raise PromQLError(f"{error}: {text}") from None
    before = printed(expr)
    for operator, node, change, build, index in _candidates(expr, fixed_ranges):
        mutated = _replace(expr, index, build)
        after = printed(mutated)
        if after == before:
            continue
        written = _splice(text, before, after)
        reprinted = written is None or _reparsed(written) != after
        if reprinted:
            written = after
        assert written is not None
        if _reparsed(written) != after:
            raise PromQLError(f"mutant does not print as intended: {written!r} vs {after!r}")
        yield ExprMutant(operator, node, change, written, reprinted)


def _reparsed(text: str) -> str | None:
    try:
        return printed(pp.parse(text))
    except ValueError:
        return None
