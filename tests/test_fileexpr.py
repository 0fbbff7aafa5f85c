"""File event expressions: values, precise diagnostics, canonical text, JSON, evaluation
against a direct model, and the instants at which time alone changes a comparison."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fileeval import PathState, evaluate_file_expr, next_change
from engine.fileexpr import (
    EPSILON,
    FILE_FUNCS,
    FileAnd,
    FileCompare,
    FileNode,
    FileNot,
    FileOr,
    FileTest,
    Loc,
    file_hosts,
    file_paths,
    format_file_expr,
    from_json,
    has_arrival,
    parse_file_expr,
    to_json,
)

KIB, MIB, GIB = 1024, 1024**2, 1024**3
NOW = 1_800_000_000.0


def parse(text: str) -> FileNode:
    result = parse_file_expr(text)
    assert result.ok, [str(d) for d in result.diagnostics]
    assert result.tree is not None
    return result.tree


def errors(text: str, line: int = 1, col_offset: int = 0) -> list[str]:
    result = parse_file_expr(text, line=line, col_offset=col_offset)
    assert not result.ok
    assert result.tree is None
    return [str(d) for d in result.diagnostics]


def compare(func: str, path: str, op: str, amount: str, value: float) -> FileCompare:
    return FileCompare(func, Loc(path), op, amount, value)


# --- the LSF examples --------------------------------------------------------------


def test_exist_and_size() -> None:
    assert parse("exist(/tmp/core) && size(/tmp/core)>10M") == FileAnd(
        (
            FileTest("exist", Loc("/tmp/core")),
            compare("size", "/tmp/core", ">", "10M", 10 * MIB),
        )
    )


def test_a_decimal_size_with_a_space_before_the_unit() -> None:
    tree = parse("size(/var/adm/logs/log_file) >= 3.5 M")
    assert tree == compare("size", "/var/adm/logs/log_file", ">=", "3.5M", 3.5 * MIB)


def test_age_in_hours_is_held_in_seconds() -> None:
    assert parse("age(/u/db/datafile) > 4H") == compare("age", "/u/db/datafile", ">", "4H", 14400)


def test_not_exist() -> None:
    assert parse("!exist(/usr/data/lock_file)") == FileNot(
        FileTest("exist", Loc("/usr/data/lock_file"))
    )


def test_a_host_is_recorded_with_the_path() -> None:
    tree = parse("exist(hostD:/usr/local/fileA)")
    assert tree == FileTest("exist", Loc("/usr/local/fileA", "hostD"))
    assert file_hosts(tree) == ["hostD"]
    assert file_paths(tree) == ["/usr/local/fileA"]
    assert format_file_expr(tree) == "exist(hostD:/usr/local/fileA)"


def test_arrival_and_stable() -> None:
    tree = parse("arrival(/in/feed) && stable(/in/feed) >= 30")
    assert tree == FileAnd(
        (FileTest("arrival", Loc("/in/feed")), compare("stable", "/in/feed", ">=", "30", 30))
    )
    assert has_arrival(tree)
    assert not has_arrival(parse("exist(/a) || !exist(/b)"))


# --- units and numbers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "value"),
    [
        ("size(/a) > 1", "1", 1),
        ("size(/a) > 1K", "1K", KIB),
        ("size(/a) > 1k", "1K", KIB),
        ("size(/a) > 2 m", "2M", 2 * MIB),
        ("size(/a) > 3G", "3G", 3 * GIB),
        ("size(/a) > 0.5K", "0.5K", 512),
        ("size(/a) > 0", "0", 0),
        ("size(/a) > 007", "007", 7),
        ("age(/a) > 30", "30", 1800),
        ("age(/a) > 1.5", "1.5", 90),
        ("age(/a) > 2h", "2H", 7200),
        ("age(/a) > 1 D", "1D", 86400),
        ("age(/a) > 1W", "1W", 604800),
        ("age(/a) > 0.5w", "0.5W", 302400),
        ("stable(/a) > 30", "30", 30),
        ("stable(/a) > 2.25", "2.25", 2.25),
    ],
)
def test_units_scale_the_amount(text: str, amount: str, value: float) -> None:
    tree = parse(text)
    assert isinstance(tree, FileCompare)
    assert (tree.amount, tree.value) == (amount, value)


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "==", "!="])
def test_every_operator_with_or_without_spaces(op: str) -> None:
    expected = compare("size", "/a", op, "1K", KIB)
    assert parse(f"size(/a){op}1K") == expected
    assert parse(f"size( /a )  {op}  1 K") == expected


# --- structure and canonical text --------------------------------------------------


def test_not_binds_tighter_than_and_tighter_than_or() -> None:
    a, b, c = (FileTest("exist", Loc(p)) for p in ("/a", "/b", "/c"))
    assert parse("exist(/a) || exist(/b) && exist(/c)") == FileOr((a, FileAnd((b, c))))
    assert parse("!exist(/a) && exist(/b)") == FileAnd((FileNot(a), b))
    assert parse("!(exist(/a) && exist(/b))") == FileNot(FileAnd((a, b)))
    assert parse("!!exist(/a)") == FileNot(FileNot(a))
    # A comparison belongs to its function: ! negates the whole comparison.
    assert parse("!size(/a) > 1") == FileNot(compare("size", "/a", ">", "1", 1))


def test_nested_ands_and_ors_are_flattened() -> None:
    a, b, c, d = (FileTest("exist", Loc(p)) for p in ("/a", "/b", "/c", "/d"))
    assert parse("exist(/a) && (exist(/b) && (exist(/c)))") == FileAnd((a, b, c))
    assert parse("(exist(/a) || exist(/b)) || exist(/c) || exist(/d)") == FileOr((a, b, c, d))
    assert parse("((exist(/a)))") == a


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("exist(/tmp/core)&&size(/tmp/core)>10M", "exist(/tmp/core) && size(/tmp/core) > 10M"),
        ("size(/a)>=3.5 m", "size(/a) >= 3.5M"),
        ("(exist(/a) || exist(/b)) && exist(/c)", "(exist(/a) || exist(/b)) && exist(/c)"),
        ("exist(/a) || (exist(/b) && exist(/c))", "exist(/a) || exist(/b) && exist(/c)"),
        ("! ( exist(/a) )", "!exist(/a)"),
        ("!(exist(/a) || exist(/b))", "!(exist(/a) || exist(/b))"),
        ("((exist(/a) && exist(/b)) && exist(/c))", "exist(/a) && exist(/b) && exist(/c)"),
        ("exist(\n  hostD:/x\n)\n&& age(/y) < 2 d", "exist(hostD:/x) && age(/y) < 2D"),
        ('exist("/plain")', "exist(/plain)"),
        ("exist('/my dir/x')", "exist('/my dir/x')"),
        ("exist('hostD:/my dir/x')", "exist('hostD:/my dir/x')"),
        ('exist("/it\'s")', 'exist("/it\'s")'),
        ("exist('/a(b)')", "exist('/a(b)')"),
    ],
)
def test_canonical_text(text: str, canonical: str) -> None:
    tree = parse(text)
    assert format_file_expr(tree) == canonical
    assert parse(canonical) == tree


def test_quoted_paths_keep_spaces_and_take_backslash_escapes() -> None:
    assert parse("exist('/my dir/x y')") == FileTest("exist", Loc("/my dir/x y"))
    assert parse('exist("/my dir")') == FileTest("exist", Loc("/my dir"))
    assert parse("exist('h1:/my dir')") == FileTest("exist", Loc("/my dir", "h1"))
    both = FileTest("exist", Loc("/a'b\"c\\d"))
    assert parse(r"exist('/a\'b\"c\\d')") == both
    assert format_file_expr(both) == r"""exist('/a\'b"c\\d')"""
    # Unquoted, a backslash is just a character, and ':' after the first '/' is too.
    assert parse(r"exist(/a\b:c)") == FileTest("exist", Loc(r"/a\b:c"))
    assert Loc(r"/a\b").text() == r"/a\b"
    assert Loc(r"/a b\c").text() == r"'/a b\\c'"


def test_paths_and_hosts_are_listed_once_in_first_seen_order() -> None:
    tree = parse("size(/b) > 1 && (exist(h2:/a) || age(h1:/b) > 1) && !exist(h2:/c)")
    assert file_paths(tree) == ["/b", "/a", "/c"]
    assert file_hosts(tree) == ["h2", "h1"]


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exist(tmp/x)", "1:7: path 'tmp/x' is not absolute"),
        ("exist(~/x)", "1:7: path '~/x' is not absolute"),
        ("exist()", "1:7: path '' is not absolute"),
        ("exist(  )", "1:9: path '' is not absolute"),
        ("exist('')", "1:8: path '' is not absolute"),
        ("exist('my dir/x')", "1:8: path 'my dir/x' is not absolute"),
        ("exist(hostD:usr/x)", "1:13: path 'usr/x' is not absolute"),
        ("exist(h:x)", "1:9: path 'x' is not absolute"),
        (
            "foo(/a)",
            "1:1: unknown file function 'foo' (use arrival, exist, size, age or stable)",
        ),
        (
            "exist(/a) && Size(/a) > 1",
            "1:14: unknown file function 'Size' (use arrival, exist, size, age or stable)",
        ),
        ("size(/a) > 10X", "1:14: unit 'X' is not valid for size() (use K, M or G)"),
        ("size(/a) > 10 MB", "1:15: unit 'MB' is not valid for size() (use K, M or G)"),
        ("age(/a) > 3M", "1:12: unit 'M' is not valid for age() (use H, D or W)"),
        ("age(/a) > 3 s", "1:13: unit 's' is not valid for age() (use H, D or W)"),
        ("stable(/a) > 30s", "1:16: stable() takes seconds, without a unit"),
        ("stable(/a) > 1 M", "1:16: stable() takes seconds, without a unit"),
        ("exist(/a) > 3", "1:11: '>' does not apply to exist(), which is true or false"),
        ("arrival(/a)==1", "1:12: '==' does not apply to arrival(), which is true or false"),
        ("size(/a)", "1:1: size() needs a comparison, e.g. size(/a) > 10M"),
        ("!age('/a b')", "1:2: age() needs a comparison, e.g. age('/a b') > 4H"),
        ("stable(/a)", "1:1: stable() needs a comparison, e.g. stable(/a) > 60"),
        ("size(/a) > -3", "1:12: number '-3' is negative"),
        ("age(/a) > -1.5H", "1:11: number '-1.5' is negative"),
        ("size(/a) > 3.5.1", "1:12: '3.5.1' is not a number"),
        ("size(/a) > .5", "1:12: '.5' is not a number"),
        ("size(/a) > 5.", "1:12: '5.' is not a number"),
        ("size(/a) > 1e5", "1:12: '1e5' is not a number"),
        ("size(/a) > M", "1:12: 'M' is not a number"),
        ("size(/a) > 10M K", "1:16: unexpected 'K' after '10M'"),
        ("size(/a) > " + "9" * 20, "1:12: '" + "9" * 20 + "' is too large"),
        ("exist(bad_host:/a)", "1:7: host 'bad_host' is not a valid host name"),
        ("exist(-h:/a)", "1:7: host '-h' is not a valid host name"),
        ("exist(:/a)", "1:7: host '' is not a valid host name"),
        ("exist(' h:/a')", "1:8: host ' h' is not a valid host name"),
        ("", "1:1: the file expression is empty"),
        (" \n\t", "1:1: the file expression is empty"),
        (
            "exist(/a) &&",
            "1:13: syntax error: expected '!', '(' or a file function, "
            "found the end of the expression",
        ),
        (
            "exist(/a) size(/b)",
            "1:11: syntax error: expected a comparison, '&&', '||' or the end, found 'size'",
        ),
        (
            "size(/a) => 3",
            "1:10: syntax error: expected a comparison, '&&', '||' or the end, found '=>'",
        ),
        ("size(/a) >", "1:11: syntax error: expected a number, found the end of the expression"),
        (
            "age(/a) > 4 exist(/b)",
            "1:13: syntax error: expected a unit, '&&', '||' or the end, found 'exist'",
        ),
        ("exist(/a b)", "1:10: syntax error: expected ')', found 'b'"),
        ("exist('/a b)", "1:7: syntax error: a quote is not closed: '/a b)"),
        ("exist /a", "1:7: syntax error: expected '(', found '/a'"),
        (
            "(exist(/a)",
            "1:11: syntax error: expected a comparison, '&&', '||' or ')', "
            "found the end of the expression",
        ),
        (
            "exist(/a))",
            "1:10: syntax error: expected a comparison, '&&', '||' or the end, found ')'",
        ),
        ("/tmp/x", "1:1: syntax error: expected '!', '(' or a file function, found '/tmp/x'"),
        (
            "exist(/a) & exist(/b)",
            "1:11: syntax error: expected a comparison, '&&', '||' or the end, found '&'",
        ),
        ("(" * 5000 + "exist(/a)" + ")" * 5000, "1:1: the file expression is nested too deeply"),
    ],
)
def test_each_error_names_its_place_and_token(text: str, expected: str) -> None:
    assert errors(text) == [f"-w:{expected}"]


def test_every_error_is_reported_in_order() -> None:
    assert errors("size(x) > 10X || age(h_1:/b) > -2 && exist(/c) > 1 && foo(/d)") == [
        "-w:1:6: path 'x' is not absolute",
        "-w:1:13: unit 'X' is not valid for size() (use K, M or G)",
        "-w:1:22: host 'h_1' is not a valid host name",
        "-w:1:32: number '-2' is negative",
        "-w:1:48: '>' does not apply to exist(), which is true or false",
        "-w:1:55: unknown file function 'foo' (use arrival, exist, size, age or stable)",
    ]
    # A bad number and a bad unit in one amount are both named.
    assert errors("age(/a) > 1.2.3Q") == [
        "-w:1:11: '1.2.3Q' is not a number",
        "-w:1:16: unit 'Q' is not valid for age() (use H, D or W)",
    ]


def test_line_and_column_offset_place_the_text_in_a_larger_one() -> None:
    # As in `-w "done(a) && file(exist(tmp))"`: the body starts at column 19.
    assert errors("exist(tmp)", line=3, col_offset=18) == ["-w:3:25: path 'tmp' is not absolute"]
    # Only the first line is shifted; later lines start at the caller's column 1.
    assert errors("exist(/a) &&\n  size(/b) > 1X", line=2, col_offset=18) == [
        "-w:3:15: unit 'X' is not valid for size() (use K, M or G)"
    ]
    assert errors("exist(/a) exist(/b)", col_offset=18) == [
        "-w:1:29: syntax error: expected a comparison, '&&', '||' or the end, found 'exist'"
    ]
    assert errors("exist(/a) &&\n\n  ) ", line=5, col_offset=18) == [
        "-w:7:3: syntax error: expected '!', '(' or a file function, found ')'"
    ]
    assert errors("", col_offset=18) == ["-w:1:19: the file expression is empty"]
    result = parse_file_expr("exist(x)", "file()")
    assert str(result.diagnostics[0]) == "file():1:7: path 'x' is not absolute"


# --- JSON --------------------------------------------------------------------------


def test_json_is_plain_and_round_trips() -> None:
    tree = parse("!exist(h:/a) && (size('/b c') > 1.5K || arrival(/d))")
    data = to_json(tree)
    assert data == {
        "and": [
            {"not": {"func": "exist", "path": "/a", "host": "h"}},
            {
                "or": [
                    {"func": "size", "path": "/b c", "op": ">", "amount": "1.5K", "value": 1536.0},
                    {"func": "arrival", "path": "/d"},
                ]
            },
        ]
    }
    assert from_json(json.loads(json.dumps(data))) == tree


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"func": "open", "path": "/a"},
        {"func": "size", "path": "/a", "amount": "1", "value": 1},
        {"func": "size", "path": "/a", "op": "=", "amount": "1", "value": 1},
    ],
)
def test_from_json_refuses_what_to_json_cannot_write(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        from_json(data)


# --- evaluation --------------------------------------------------------------------


def test_evaluation_of_each_function() -> None:
    states = {
        "/big": PathState(True, 20 * MIB, mtime=NOW - 3 * 3600, changed=NOW - 10),
        "/gone": PathState(False),
    }

    def holds(text: str, armed: tuple[str, ...] = ()) -> bool:
        return evaluate_file_expr(parse(text), states, armed, NOW)

    assert holds("exist(/big) && size(/big) > 10M && size(/big) <= 20M")
    assert not holds("exist(/gone)") and not holds("exist(/unknown)")
    assert holds("age(/big) > 2H && age(/big) < 181 && age(/big) == 180")
    assert holds("stable(/big) >= 10") and not holds("stable(/big) > 10")
    # A file that is not there is 0 bytes, 0 minutes old and 0 seconds stable.
    assert holds("size(/gone) == 0 && age(/gone) == 0 && stable(/unknown) == 0")
    assert holds("age(/gone) < 1 && !(stable(/gone) > 0)")
    assert holds("arrival(/gone)", armed=("/gone",)) and not holds("arrival(/gone)")
    assert holds("!exist(/gone) || exist(/big) && size(/big) < 1")


def test_an_mtime_in_the_future_gives_a_negative_age() -> None:
    states = {"/a": PathState(True, 0, mtime=NOW + 120)}
    assert evaluate_file_expr(parse("age(/a) < 0"), states, (), NOW)
    assert evaluate_file_expr(parse("age(/a) >= 0"), states, (), NOW + 120)


def test_an_age_crossing_wakes_just_past_the_minute() -> None:
    tree = parse("age(/a) > 1")
    states = {"/a": PathState(True, 0, mtime=NOW)}
    wake = next_change(tree, states, NOW)
    assert wake == NOW + 60 + EPSILON
    assert not evaluate_file_expr(tree, states, (), NOW + 60)
    assert evaluate_file_expr(tree, states, (), wake)
    assert next_change(tree, states, wake) is None


def test_next_change_takes_the_earliest_threshold_of_existing_files() -> None:
    tree = parse("(age(/a) >= 2 || stable(/b) < 30) && size(/a) > 0 && !(age(/c) > 1)")
    states = {
        "/a": PathState(True, 5, mtime=NOW - 90),
        "/b": PathState(True, 5, mtime=NOW, changed=NOW - 10),
    }
    assert next_change(tree, states, NOW) == NOW + 20  # stable(/b) reaches 30
    assert next_change(tree, states, NOW + 20) == NOW + 30  # age(/a) reaches 120
    assert next_change(tree, states, NOW + 30) is None  # /c is missing: its age stays 0
    assert next_change(parse("size(/a) > 1 && exist(/a)"), states, NOW) is None
    assert next_change(tree, {}, NOW) is None


def test_equality_changes_twice() -> None:
    tree = parse("age(/a) == 1")
    states = {"/a": PathState(True, 0, mtime=NOW)}
    assert next_change(tree, states, NOW) == NOW + 60
    assert next_change(tree, states, NOW + 60) == NOW + 60 + EPSILON
    assert next_change(tree, states, NOW + 60.0005) is None


def test_a_threshold_lost_to_rounding_is_found_a_float_later() -> None:
    # 0.13 minutes is 7.800000000000001 s, and NOW + that rounds to NOW + 7.8 - a float
    # too early: age() computed then is 7.799999952316284.
    tree = parse("age(/a) >= 0.13")
    states = {"/a": PathState(True, 0, mtime=NOW)}
    wake = next_change(tree, states, NOW)
    assert wake is not None and wake > NOW + 7.8
    assert evaluate_file_expr(tree, states, (), wake)
    assert not evaluate_file_expr(tree, states, (), math.nextafter(wake, 0))
    # Equality can never hold, so it never changes.
    assert next_change(parse("age(/a) == 0.13"), states, NOW) is None


# --- properties --------------------------------------------------------------------

_HOSTS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,8}", fullmatch=True)
_PATH_CHARS = st.sampled_from(list("abc/ ._-:'\"()\\\t\n&|!<>=~*é"))
_PATHS = st.lists(_PATH_CHARS, max_size=12).map(lambda chars: "/" + "".join(chars))
_LOCS = st.builds(Loc, _PATHS, st.none() | _HOSTS)
_NUMBERS = st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True)
_SCALES = {
    "size": {"": 1, "K": KIB, "M": MIB, "G": GIB},
    "age": {"": 60, "H": 3600, "D": 86400, "W": 604800},
    "stable": {"": 1},
}


@st.composite
def _compares(draw: st.DrawFn, locs: st.SearchStrategy[Loc] = _LOCS) -> FileCompare:
    func = draw(st.sampled_from(["size", "age", "stable"]))
    number = draw(_NUMBERS)
    unit = draw(st.sampled_from(sorted(_SCALES[func])))
    op = draw(st.sampled_from([">", ">=", "<", "<=", "==", "!="]))
    return FileCompare(func, draw(locs), op, number + unit, float(number) * _SCALES[func][unit])


def _trees(locs: st.SearchStrategy[Loc] = _LOCS) -> st.SearchStrategy[FileNode]:
    tests = st.builds(FileTest, st.sampled_from(["arrival", "exist"]), locs)
    leaves: st.SearchStrategy[FileNode] = st.one_of(tests, _compares(locs))

    def extend(inner: st.SearchStrategy[FileNode]) -> st.SearchStrategy[FileNode]:
        several = st.lists(inner, min_size=2, max_size=3).map(tuple)
        return st.one_of(
            st.builds(FileNot, inner),
            several.map(FileAnd),
            several.map(FileOr),
        )

    return st.recursive(leaves, extend, max_leaves=8)


def _flat(tree: FileNode) -> FileNode:
    """The shape the parser gives: no and directly inside and, nor or inside or."""
    if isinstance(tree, FileNot):
        return FileNot(_flat(tree.operand))
    if isinstance(tree, FileAnd | FileOr):
        operands: list[FileNode] = []
        for operand in map(_flat, tree.operands):
            same = isinstance(operand, type(tree))
            operands.extend(operand.operands if same else (operand,))  # type: ignore[union-attr]
        return type(tree)(tuple(operands))
    return tree


@settings(max_examples=200, deadline=None)
@given(_trees())
def test_generated_trees_print_and_parse_back(tree: FileNode) -> None:
    text = format_file_expr(tree)
    result = parse_file_expr(text)
    assert result.ok, (text, [str(d) for d in result.diagnostics])
    assert result.tree == _flat(tree)
    assert format_file_expr(_flat(tree)) == text


@settings(max_examples=100, deadline=None)
@given(_trees())
def test_json_round_trips(tree: FileNode) -> None:
    assert from_json(json.loads(json.dumps(to_json(tree)))) == tree


_POOL = ["/a", "/b", "/c d"]


def _model(tree: FileNode, states: dict[str, PathState], armed: set[str], now: float) -> bool:
    """The semantics written out once more, case by case."""
    match tree:
        case FileTest("arrival", loc):
            return loc.path in armed
        case FileTest("exist", loc):
            return loc.path in states and states[loc.path].exists
        case FileCompare(func, loc, op, _, value):
            state = states.get(loc.path, PathState(False))
            if not state.exists:
                measured = 0.0
            elif func == "size":
                measured = state.size
            elif func == "age":
                measured = now - state.mtime
            else:
                measured = now - state.changed
            return {
                ">": measured > value,
                ">=": measured >= value,
                "<": measured < value,
                "<=": measured <= value,
                "==": measured == value,
                "!=": measured != value,
            }[op]
        case FileNot(operand):
            return not _model(operand, states, armed, now)
        case FileAnd(operands):
            return all(_model(item, states, armed, now) for item in operands)
        case FileOr(operands):
            return any(_model(item, states, armed, now) for item in operands)
    raise AssertionError(tree)


_STATES = st.builds(
    PathState,
    st.booleans(),
    st.sampled_from([0, 1, 512, KIB, 3 * MIB, 4 * GIB]),
    st.sampled_from([NOW - 7200, NOW - 120, NOW - 60, NOW - 59.5, NOW, NOW + 60]),
    st.sampled_from([NOW - 60, NOW - 30, NOW - 1, NOW]),
)


@settings(max_examples=300, deadline=None)
@given(
    _trees(st.builds(Loc, st.sampled_from(_POOL))),
    st.dictionaries(st.sampled_from(_POOL), _STATES),
    st.sets(st.sampled_from(_POOL)),
)
def test_evaluation_matches_the_model(
    tree: FileNode, states: dict[str, PathState], armed: set[str]
) -> None:
    assert evaluate_file_expr(tree, states, armed, NOW) == _model(tree, states, armed, NOW)


_BASES = st.one_of(
    st.sampled_from([NOW, NOW - 0.25, NOW - 1e-7, 1e9 + 1 / 3, 86400.5, 0.0]),
    st.floats(0, 4e9),
)
_OFFSETS = st.one_of(
    st.sampled_from([0.0, -EPSILON, -EPSILON / 2, EPSILON / 2, -1.0, 1.0, -1e6, 1e-9]),
    st.floats(-1e5, 1e5),
)


@settings(max_examples=400, deadline=None)
@given(_compares(st.just(Loc("/a"))).filter(lambda c: c.func != "size"), _BASES, _OFFSETS)
def test_next_change_is_when_a_single_comparison_flips(
    atom: FileCompare, base: float, offset: float
) -> None:
    """Constant from now until the instant next_change names, different at it."""
    state = PathState(True, 0, mtime=base, changed=base)
    now = base + atom.value + offset

    def value(at: float) -> bool:
        return evaluate_file_expr(atom, {"/a": state}, (), at)

    wake = next_change(atom, {"/a": state}, now)
    if wake is None:
        for later in (now + EPSILON, now + 1, now + 1e6, now + 1e9):
            assert value(later) == value(now)
        return
    assert wake > now
    assert value(wake) != value(now)
    # Sampled short of the threshold: strict comparisons fire EPSILON past it.
    end = wake - 2 * EPSILON if atom.op in (">", "<=", "==", "!=") else wake
    for step in range(20):
        at = now + (end - now) * step / 20
        if now <= at < end:
            assert value(at) == value(now), (at, wake)
    if atom.op in (">=", "<"):
        assert value(math.nextafter(wake, -math.inf)) == value(now)


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "==", "!="])
def test_next_change_ends_where_rounding_makes_long_plateaus(op: str) -> None:
    """Timestamps near 0 against a base far before it: a billion instants share one age."""
    atom = compare("age", "/a", op, "1000D", 86400000)
    for base in (-86400000.0, -86400000.0 - 1e-3, -1e15):
        state = {"/a": PathState(True, 0, mtime=base)}
        for now in (base + 86400000 - 1, base + 86400000):
            wake = next_change(atom, state, now)
            if wake is not None:
                assert wake > now
                assert evaluate_file_expr(atom, state, (), wake) != evaluate_file_expr(
                    atom, state, (), now
                )


_ALPHABET = "aegirstvxzKMGHDW0123456789./:~'\"\\ ()!&|<>=-\n"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(alphabet=_ALPHABET, max_size=40), st.text(max_size=30)))
def test_any_text_gives_a_tree_or_diagnostics_and_never_raises(text: str) -> None:
    result = parse_file_expr(text)
    assert result.ok == (not result.diagnostics)
    if result.ok:
        assert result.tree is not None
        assert parse_file_expr(format_file_expr(result.tree)).tree == result.tree
    else:
        assert result.tree is None
        for diagnostic in result.diagnostics:
            assert diagnostic.line >= 1 and diagnostic.col >= 1


@pytest.mark.parametrize("func", FILE_FUNCS)
def test_every_function_parses(func: str) -> None:
    text = f"{func}(/a)" + ("" if func in ("arrival", "exist") else " > 1")
    assert format_file_expr(parse(text)) == text
