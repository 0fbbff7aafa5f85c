"""The `-w` language: precedence, references, diagnostics, and a canonical-text round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.conditions import (
    COUNT_FUNCS,
    And,
    CountPred,
    External,
    JobPred,
    JobRef,
    Node,
    Not,
    Or,
    format_node,
    quote_name,
)
from engine.condparse import parse_condition


def parse(text: str) -> Node:
    result = parse_condition(text)
    assert result.ok, result.diagnostics
    assert result.tree is not None
    return result.tree


def done(name: str) -> JobPred:
    return JobPred("done", JobRef(name=name))


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    assert parse("a || b && !c") == Or((done("a"), And((done("b"), Not(done("c"))))))
    assert parse("!a && b") == And((Not(done("a")), done("b")))
    assert parse("(a || b) && c") == And((Or((done("a"), done("b"))), done("c")))


def test_lsf_example_means_a_and_b_or_c() -> None:
    tree = parse("done(jobA) && ended(jobB) || started(jobC)")
    assert isinstance(tree, Or)
    assert isinstance(tree.operands[0], And)


def test_bare_reference_means_done() -> None:
    assert parse("12") == JobPred("done", JobRef(id=12))
    assert parse("extract") == done("extract")


def test_references_ids_quoted_names_and_wildcards() -> None:
    assert parse("ended(42)") == JobPred("ended", JobRef(id=42))
    assert parse("'210'") == JobPred("done", JobRef(name="210"))
    assert parse('done("my job")') == done("my job")
    assert parse("ended(render*)") == JobPred("ended", JobRef(name="render", wildcard=True))
    assert parse("done(a.b-c/d:e@f%g_h[1])") == done("a.b-c/d:e@f%g_h[1]")


def test_keyword_followed_by_letters_is_a_name() -> None:
    assert parse("exitjob") == done("exitjob")
    assert parse("done && donejob") == And((done("done"), done("donejob")))


def test_exit_codes_and_operators() -> None:
    assert parse("exit(b)") == JobPred("exit", JobRef(name="b"))
    assert parse("exit(b, 3)") == JobPred("exit", JobRef(name="b"), "==", 3)
    for op in (">", ">=", "<", "<=", "==", "!="):
        assert parse(f"exit(b, {op} 7)") == JobPred("exit", JobRef(name="b"), op, 7)
    assert parse("exit(b,>=0)") == JobPred("exit", JobRef(name="b"), ">=", 0)


def test_count_functions_take_an_operator_and_a_number_or_a_star() -> None:
    assert parse("numdone(render, >= 50)") == CountPred("numdone", JobRef(name="render"), ">=", 50)
    assert parse("numexit(12, == 0) && numended(12, *)") == And(
        (CountPred("numexit", JobRef(id=12), "==", 0), CountPred("numended", JobRef(id=12)))
    )
    assert parse('!numrun("a b", > 3)') == Not(CountPred("numrun", JobRef(name="a b"), ">", 3))
    for func in COUNT_FUNCS:
        for op in (">", ">=", "<", "<=", "==", "!="):
            assert parse(f"{func}(j,{op}7)") == CountPred(func, JobRef(name="j"), op, 7)
    assert parse("numpend(j, == 2147483647)") == CountPred(
        "numpend", JobRef(name="j"), "==", 2**31 - 1
    )
    assert parse("numdone(j, == 007)") == CountPred("numdone", JobRef(name="j"), "==", 7)


def test_the_star_of_a_count_is_not_part_of_the_name() -> None:
    assert parse("numdone(a, *)") == CountPred("numdone", JobRef(name="a"))
    assert parse("numdone(a,*)") == CountPred("numdone", JobRef(name="a"))
    assert parse("numdone(a*, *)") == CountPred("numdone", JobRef(name="a", wildcard=True))
    assert parse("numstart(a*,>1)") == CountPred(
        "numstart", JobRef(name="a", wildcard=True), ">", 1
    )
    assert parse("numdone('*', *)") == CountPred("numdone", JobRef(name="*"))


def test_count_keywords_followed_by_letters_are_names() -> None:
    assert parse("numdonex") == done("numdonex")
    assert parse("numdone && numexit.log") == And((done("numdone"), done("numexit.log")))
    assert parse("numdone(numdone, *)") == CountPred("numdone", JobRef(name="numdone"))
    assert quote_name("numdone") == "'numdone'"
    assert format_node(parse("numended(numrun*, *)")) == "numended(numrun*, *)"


def test_same_operator_groups_are_flattened() -> None:
    assert parse("a && (b && c)") == And((done("a"), done("b"), done("c")))


@pytest.mark.parametrize(
    ("text", "col", "fragment"),
    [
        ("done(a) &&", 11, "expected '!', '('"),
        ("done(a) &&", 11, "found the end of the condition"),
        ("done(a) && || done(b)", 12, "found '||'"),
        ("(done(a)", 9, "expected"),
        ("done(a))", 8, "found ')'"),
        ("started(a, 3)", 1, "an exit code goes with exit()"),
        ("exit(a, 300)", 1, "out of range"),
        ("exit(a, > -1)", 1, "out of range"),
        ("done(a) && file(exist(/tmp/x) && size(/tmp/x) > 1M) &&", 55, "found the end"),
        ("done(a) && calendar(*:13:*:8:0)", 23, "month 13"),
        ("calendar( *:*:Mon[6]:8:0)", 15, "Mon[6]"),
        ("calendar(*:*:*:8:0%5X)", 20, "%5X"),
        ("!event(disk is full)", 2, "event name 'disk is full' cannot hold white space"),
        ("done(a) || file( )", 12, "file() is empty"),
        ("calendar()", 1, "calendar() is empty"),
        ("done(*)", 6, "found '*'"),
        ("   ", 1, "empty"),
        ("done(a) & done(b)", 9, "found '&'"),
        ("numdone(a)", 1, "numdone() needs a count: numdone(job, op N) or numdone(job, *)"),
        ("numdone(a, 5)", 12, "expected '*', '>=', '<=', '==', '!=', '>' or '<', found '5'"),
        ("numdone(a, > -1)", 14, "expected a count, found '-1'"),
        ("numexit(a, >= *)", 15, "expected a count, found '*'"),
        ("numrun(a, *5)", 12, "found '5'"),
        ("numdone(a * )", 11, "found '*'"),
        ("numpend(a, > 2147483648)", 14, "count 2147483648 is out of range (0 to 2147483647)"),
        ("done(b) && numdone('1 2', >= 99999999999)", 30, "count 99999999999 is out"),
    ],
)
def test_bad_conditions_name_the_column(text: str, col: int, fragment: str) -> None:
    result = parse_condition(text)
    assert not result.ok
    diagnostic = result.diagnostics[0]
    assert diagnostic.line == 1
    assert diagnostic.col == col, str(diagnostic)
    assert fragment in diagnostic.message
    assert str(diagnostic).startswith(f"-w:1:{col}: ")


def test_canonical_text() -> None:
    text = "done(a)&&(exit(b,>2)||ended(c*)) || !(started(12)||'x y')"
    assert format_node(parse(text)) == (
        "done(a) && (exit(b, > 2) || ended(c*)) || !(started(12) || done('x y'))"
    )
    text = 'numdone( render ,>=50)&&!numexit("a b",*)||numstart(x*,!=0)'
    assert format_node(parse(text)) == (
        "numdone(render, >= 50) && !numexit('a b', *) || numstart(x*, != 0)"
    )


def test_a_count_out_of_range_is_found_on_any_line() -> None:
    result = parse_condition('done(a) &&\n  numstart("x 9",  <  4294967296 )')
    assert [str(d) for d in result.diagnostics] == [
        "-w:2:23: count 4294967296 is out of range (0 to 2147483647)"
    ]


def test_names_that_need_quotes_are_quoted() -> None:
    assert quote_name("plain") == "plain"
    assert quote_name("210") == "'210'"
    assert quote_name("done") == "'done'"
    assert quote_name("with space") == "'with space'"
    assert quote_name("it's") == '"it\'s"'


# --- property: parse(format(tree)) == tree ---------------------------------------------

KEYWORDS = ("started", "done", "exit", "ended", "calendar", "file", "event", *COUNT_FUNCS)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,8}", fullmatch=True).filter(
    lambda n: n not in KEYWORDS
)
refs = st.one_of(
    st.builds(lambda i: JobRef(id=i), st.integers(min_value=0, max_value=10**6)),
    st.builds(lambda n: JobRef(name=n), names),
    st.builds(lambda n: JobRef(name=n, wildcard=True), names),
    st.builds(lambda n: JobRef(name=n), st.text("ab '\"x1", min_size=1, max_size=6)),
)
plain_preds = st.builds(JobPred, st.sampled_from(["started", "done", "exit", "ended"]), refs)
exit_preds = st.builds(
    lambda r, op, code: JobPred("exit", r, op, code),
    refs,
    st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
    st.integers(min_value=0, max_value=255),
)
count_preds = st.one_of(
    st.builds(
        CountPred,
        st.sampled_from(COUNT_FUNCS),
        refs,
        st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
        st.integers(min_value=0, max_value=2**31 - 1),
    ),
    st.builds(CountPred, st.sampled_from(COUNT_FUNCS), refs),  # num*(j, *)
)
leaves = st.one_of(plain_preds, exit_preds, count_preds)


def _combine(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(Not, children),
        st.builds(lambda xs: And(tuple(xs)), st.lists(children, min_size=2, max_size=4)),
        st.builds(lambda xs: Or(tuple(xs)), st.lists(children, min_size=2, max_size=4)),
    )


trees = st.recursive(leaves, _combine, max_leaves=12)


def normalise(node: Node) -> Node:
    """What the parser produces: same-operator children merged into their parent."""
    if isinstance(node, Not):
        return Not(normalise(node.operand))
    if isinstance(node, And | Or):
        kind = type(node)
        flat: list[Node] = []
        for child in (normalise(c) for c in node.operands):
            flat.extend(child.operands if isinstance(child, kind) else [child])
        return kind(tuple(flat))
    return node


@settings(max_examples=300, deadline=None)
@given(trees)
def test_format_then_parse_round_trips(tree: Node) -> None:
    text = format_node(tree)
    assert parse(text) == normalise(tree)
    assert format_node(parse(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab()!&|, '*01>=<", max_size=25))
def test_parser_never_raises_on_junk(text: str) -> None:
    result = parse_condition(text)
    assert result.ok or result.diagnostics
    for diagnostic in result.diagnostics:
        assert diagnostic.line >= 1
        assert diagnostic.col >= 1


COUNT_TOKENS = ["numdone", "numstart", "(", ")", ",", "*", ">=", "!=", "a", "12", "3000000000"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*COUNT_TOKENS, " ", "!", "&&", "'x'"]), max_size=12))
def test_parser_never_raises_on_junk_around_counts(tokens: list[str]) -> None:
    text = "".join(tokens)
    result = parse_condition(text)
    assert result.ok or result.diagnostics
    for diagnostic in result.diagnostics:
        assert 1 <= diagnostic.col <= len(text) + 1


def test_external_atoms_keep_their_body_for_later_issues() -> None:
    result = parse_condition("file(exist(/tmp/a) && (size(/tmp/a) > 1M))")
    assert result.tree == External("file", "exist(/tmp/a) && (size(/tmp/a) > 1M)")
