"""Callback triggers and callbacks.conf: the Qube seed's example, every diagnostic with its
place, canonical text and JSON round trips, and the security checks on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.callback_dirs import callback_path, check_callback_file, load_callback_dir
from engine.callbacks_conf import (
    LANGUAGES,
    NAMES,
    TYPES,
    CallbackEntry,
    TrigAnd,
    Trigger,
    TrigNode,
    TrigOr,
    format_trigger,
    from_json,
    parse_callbacks_conf,
    parse_trigger,
    to_json,
    triggers,
)

# The example of the Qube 6.6 "Universal Callbacks" page (shared/seeds/000_*.txt), as written.
SEED_CONF = """\
#
# callbacks.conf
#
# syntax of this file is :
# filename = triggers
#
logFailuresToDB.py = failed-job-self
mail-status.qcb = done-job-self
checkWork.pl = done-work-self-*
submitted.py = submit-job-self
"""


def parse(text: str) -> TrigNode:
    result = parse_trigger(text)
    assert result.ok, [str(d) for d in result.diagnostics]
    assert result.tree is not None
    return result.tree


def errors(text: str, **where: int) -> list[str]:
    result = parse_trigger(text, **where)  # type: ignore[arg-type]
    assert not result.ok
    assert result.tree is None
    return [str(d) for d in result.diagnostics]


def conf_errors(text: str) -> list[str]:
    return [str(d) for d in parse_callbacks_conf(text, "cb.conf").diagnostics]


def job(name: str, context: str = "self") -> Trigger:
    return Trigger(name, "job", context)


def work(name: str, context: str = "self", extra: str = "*") -> Trigger:
    return Trigger(name, "work", context, extra)


# --- the seed ------------------------------------------------------------------------


def test_the_seed_example_parses_as_written() -> None:
    result = parse_callbacks_conf(SEED_CONF, "callbacks.conf")
    assert result.ok
    assert result.diagnostics == []
    assert result.entries == [
        CallbackEntry("logFailuresToDB.py", "python", job("failed"), "failed-job-self", 7),
        CallbackEntry("mail-status.qcb", "qcb", job("done"), "done-job-self", 8),
        CallbackEntry("checkWork.pl", "perl", work("done"), "done-work-self-*", 9),
        CallbackEntry("submitted.py", "python", job("submit"), "submit-job-self", 10),
    ]


def test_the_documented_qube_triggers() -> None:
    assert parse("complete-job-self") == job("complete")
    assert parse("running-job-19294") == job("running", "19294")
    assert parse("done-job-hello") == job("done", "hello")
    assert parse("failed-work-self-*") == work("failed")
    assert parse("complete-work-render-5") == work("complete", "render", "5")
    assert parse("complete-job-parent") == job("complete", "parent")
    assert parse("removed-job-self") == job("removed")
    assert parse("timeout-work-self-*") == work("timeout")
    assert parse("(complete-work-ribgen-5 && complete-work-render-5) || complete-work-comp-5") == (
        TrigOr(
            (
                TrigAnd((work("complete", "ribgen", "5"), work("complete", "render", "5"))),
                work("complete", "comp", "5"),
            )
        )
    )


# --- the trigger language ---------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    a, b, c = job("done", "a"), job("failed", "b"), job("killed", "c")
    assert parse("done-job-a || failed-job-b && killed-job-c") == TrigOr((a, TrigAnd((b, c))))
    assert parse("done-job-a && failed-job-b || killed-job-c") == TrigOr((TrigAnd((a, b)), c))
    assert parse("(done-job-a || failed-job-b) && killed-job-c") == TrigAnd((TrigOr((a, b)), c))


def test_nesting_flattens_and_redundant_parentheses_go() -> None:
    a, b, c = job("done", "a"), job("done", "b"), job("done", "c")
    assert parse("done-job-a && (done-job-b && done-job-c)") == TrigAnd((a, b, c))
    assert parse("((done-job-a)) || ((done-job-b || done-job-c))") == TrigOr((a, b, c))
    assert format_trigger(parse("((done-job-a))")) == "done-job-a"


def test_and_or_words_in_any_case() -> None:
    expected = TrigOr((TrigAnd((job("done", "a"), job("done", "b"))), job("done", "c")))
    assert parse("done-job-a and done-job-b or done-job-c") == expected
    assert parse("done-job-a AND done-job-b Or done-job-c") == expected
    assert parse("(done-job-a)and(done-job-b)or(done-job-c)") == expected
    # A word inside a term is part of it, and labels may be called `and` or `or`.
    assert parse("done-job-order") == job("done", "order")
    assert parse("done-job-and || done-job-or") == TrigOr((job("done", "and"), job("done", "or")))


def test_white_space_is_free() -> None:
    assert parse("  done-job-a&&done-job-b\t||\ndone-job-c ") == TrigOr(
        (TrigAnd((job("done", "a"), job("done", "b"))), job("done", "c"))
    )


def test_contexts_and_extras() -> None:
    assert parse("done-job-007") == job("done", "7")  # a job id, canonically
    assert parse("done-job-Render.v2_x") == job("done", "Render.v2_x")
    assert parse("done-job-5a") == job("done", "5a")  # not all digits: a label
    assert parse("done-work-self-frame-1") == work("done", "self", "frame-1")
    assert parse("done-work-parent-12") == work("done", "parent", "12")
    assert parse("done-work-42-Shot:A") == work("done", "42", "Shot:A")


def test_every_name_and_type() -> None:
    for name in NAMES:
        assert parse(f"{name}-job-self") == job(name)
        assert parse(f"{name}-work-self-*") == work(name)
    assert TYPES == ("job", "work")


def test_triggers_lists_the_terms_left_to_right() -> None:
    tree = parse("done-job-a && (failed-job-b || done-job-a) && killed-work-self-*")
    assert triggers(tree) == [
        job("done", "a"),
        job("failed", "b"),
        job("done", "a"),
        work("killed"),
    ]
    assert triggers(job("done")) == [job("done")]


# --- diagnostics -----------------------------------------------------------------------


def test_term_errors_name_their_part() -> None:
    assert errors("finished-job-self") == [
        "--callback:1:1: unknown trigger name 'finished' (use complete, done, submit, killed, "
        "blocked, failed, running, waiting, removed, modified or timeout)"
    ]
    assert errors("done-host-self") == [
        "--callback:1:6: unknown trigger type 'host' (use job or work)"
    ]
    assert errors("done-subjob-self-1") == [
        "--callback:1:6: subjob triggers are not supported: Tock has no job instances"
    ]
    assert errors("done-job-a@b") == [
        "--callback:1:10: bad context 'a@b': use self, parent, a job id or a job label "
        "(letters, digits, '_' and '.')"
    ]
    assert errors("Done-job-self") == [
        "--callback:1:1: unknown trigger name 'Done' (names are lower case)"
    ]
    assert errors("assigned-job-self") == [
        "--callback:1:1: trigger name 'assigned' is not supported: "
        "Tock does not assign jobs to hosts"
    ]
    assert errors("dummy-job-self") == [
        "--callback:1:1: trigger name 'dummy' is not supported: Tock has no time triggers"
    ]
    assert errors("done-job-0") == ["--callback:1:10: job id 0 is not valid: job ids start at 1"]


def test_term_shape_errors() -> None:
    assert errors("done") == [
        "--callback:1:1: 'done' is not an event: expected name-type-context, e.g. done-job-self"
    ]
    assert errors("globaltime-10000") == [
        "--callback:1:1: 'globaltime-10000' is not an event: expected name-type-context, "
        "e.g. done-job-self"
    ]
    assert errors("-job-self") == [
        "--callback:1:1: '-job-self' has no event name before the first '-'"
    ]
    assert errors("done--self") == [
        "--callback:1:6: 'done--self' has no type: expected job or work"
    ]
    assert errors("done-job-") == [
        "--callback:1:10: 'done-job-' has no context: use self, parent, a job label or a job id"
    ]


def test_extra_rules() -> None:
    assert errors("done-work-self") == [
        "--callback:1:1: 'done-work-self' needs a work name, a work id or '*' after the context, "
        "e.g. done-work-self-*"
    ]
    assert errors("done-job-self-5") == [
        "--callback:1:14: unexpected '-5': a job trigger ends at its context "
        "(an extra names a work item, and a label cannot hold '-')"
    ]
    assert errors("done-job-my-label") == [
        "--callback:1:12: unexpected '-label': a job trigger ends at its context "
        "(an extra names a work item, and a label cannot hold '-')"
    ]
    assert errors("done-work-self-") == [
        "--callback:1:16: 'done-work-self-' ends in '-': expected a work name, a work id or '*'"
    ]
    assert errors("done-work-self-fr*") == [
        "--callback:1:16: bad work name 'fr*': only a lone '*' is a wildcard"
    ]


def test_all_errors_of_a_trigger_are_collected() -> None:
    assert errors("finished-jobs-a@b || done-job-self && done") == [
        "--callback:1:1: unknown trigger name 'finished' (use complete, done, submit, killed, "
        "blocked, failed, running, waiting, removed, modified or timeout)",
        "--callback:1:10: unknown trigger type 'jobs' (use job or work)",
        "--callback:1:15: bad context 'a@b': use self, parent, a job id or a job label "
        "(letters, digits, '_' and '.')",
        "--callback:1:39: 'done' is not an event: expected name-type-context, e.g. done-job-self",
    ]


def test_syntax_errors_say_what_was_expected() -> None:
    assert errors("") == ["--callback:1:1: the trigger is empty"]
    assert errors("   ") == ["--callback:1:1: the trigger is empty"]
    assert errors("done-job-a done-job-b") == [
        "--callback:1:12: syntax error: expected '&&', '||' or the end, found 'done-job-b'"
    ]
    assert errors("done-job-a & done-job-b") == [
        "--callback:1:12: syntax error: expected '&&', '||' or the end, found '&'"
    ]
    assert errors("done-job-a &&") == [
        "--callback:1:14: syntax error: expected a trigger or '(', found the end of the trigger"
    ]
    assert errors("(done-job-a || done-job-b") == [
        "--callback:1:26: syntax error: expected '&&', '||' or ')', found the end of the trigger"
    ]
    assert errors("done-job-a and or done-job-b") == [
        "--callback:1:16: syntax error: expected a trigger or '(', found 'or'"
    ]
    assert errors("done-job-a)") == [
        "--callback:1:11: syntax error: expected '&&', '||' or the end, found ')'"
    ]
    # Neither a comment nor a path belongs in a bare trigger.
    assert errors("done-job-a # x") == [
        "--callback:1:12: syntax error: expected '&&', '||' or the end, found '#'"
    ]
    assert errors("done-job-a=/bin/x") == [
        "--callback:1:11: syntax error: expected '&&', '||' or the end, found '='"
    ]


def test_diagnostics_can_point_into_a_larger_text() -> None:
    # `tock submit --callback 'bad-job-self=/p'` with the trigger at column 5 of line 2.
    assert errors("bad-job-self", line=2, col_offset=4) == [
        "--callback:2:5: unknown trigger name 'bad' (use complete, done, submit, killed, "
        "blocked, failed, running, waiting, removed, modified or timeout)"
    ]
    result = parse_trigger("done-job-a\n&& done-job-b c", source="x", col_offset=10)
    assert [str(d) for d in result.diagnostics] == [
        "x:2:15: syntax error: expected '&&', '||' or the end, found 'c'"
    ]


def test_deep_nesting_is_refused_not_crashed() -> None:
    assert errors("(" * 5000 + "done-job-self" + ")" * 5000) == [
        "--callback:1:1: the trigger is nested too deeply"
    ]


# --- callbacks.conf ----------------------------------------------------------------------


def test_comments_blank_lines_and_spacing() -> None:
    text = (
        "# a comment\n"
        "\n"
        "   \t\n"
        "   # an indented comment\n"
        "a.py=done-job-self\n"
        "  b.sh   =   failed-job-self || killed-job-self   # trailing comment\n"
        "c.qcb = done-work-self-* # no space is needed: ## neither\n"
        "d.pl = done-job-self#tight\r\n"
    )
    result = parse_callbacks_conf(text, "cb.conf")
    assert result.diagnostics == []
    assert [(e.filename, e.language, e.text, e.line, e.col) for e in result.entries] == [
        ("a.py", "python", "done-job-self", 5, 1),
        ("b.sh", "shell", "failed-job-self || killed-job-self", 6, 3),
        ("c.qcb", "qcb", "done-work-self-*", 7, 1),
        ("d.pl", "perl", "done-job-self", 8, 1),
    ]


def test_an_empty_file_and_a_byte_order_mark() -> None:
    assert parse_callbacks_conf("", "cb.conf").entries == []
    result = parse_callbacks_conf("\ufeffa.py = done-job-self\n", "cb.conf")
    assert result.ok
    assert [e.filename for e in result.entries] == ["a.py"]


def test_the_canonical_text_is_kept() -> None:
    [entry] = parse_callbacks_conf(
        "x.py = (done-job-a AND done-job-b)or done-job-0042", "c"
    ).entries
    assert entry.text == "done-job-a && done-job-b || done-job-42"
    assert parse(entry.text) == entry.trigger


def test_file_name_errors() -> None:
    assert conf_errors("notes.txt = done-job-self") == [
        "cb.conf:1:1: unknown extension '.txt' (use .py, .pl, .qcb or .sh)"
    ]
    assert conf_errors("  runme = done-job-self") == [
        "cb.conf:1:3: 'runme' has no extension: use .py, .pl, .qcb or .sh to pick the language"
    ]
    assert conf_errors("/etc/evil.py = done-job-self") == [
        "cb.conf:1:1: '/etc/evil.py' is not a plain file name: a callback file is named without '/'"
    ]
    assert conf_errors("../up.py = done-job-self") == [
        "cb.conf:1:1: '../up.py' is not a plain file name: a callback file is named without '/'"
    ]
    assert conf_errors(".hidden.py = done-job-self") == [
        "cb.conf:1:1: '.hidden.py' starts with '.': a callback file is a plain, visible name"
    ]
    assert conf_errors("x.PY = done-job-self") == [
        "cb.conf:1:1: unknown extension '.PY' (use .py, .pl, .qcb or .sh)"
    ]
    assert set(LANGUAGES.values()) == {"python", "perl", "qcb", "shell"}


def test_line_syntax_errors() -> None:
    assert conf_errors("a.py done-job-self") == [
        "cb.conf:1:6: syntax error: expected '=', found 'done-job-self'"
    ]
    assert conf_errors("a.py") == [
        "cb.conf:1:5: syntax error: expected '=', found the end of the line"
    ]
    assert conf_errors("a.py =   # nothing") == [
        "cb.conf:1:10: syntax error: expected a trigger or '(', found '#'"
    ]
    assert conf_errors("a.py = ") == [
        "cb.conf:1:8: syntax error: expected a trigger or '(', found the end of the line"
    ]
    assert conf_errors("= done-job-self") == [
        "cb.conf:1:1: syntax error: expected a file name, found '='"
    ]
    assert conf_errors("a.py = done-job-self = b.py") == [
        "cb.conf:1:22: syntax error: expected '&&', '||' or the end, found '='"
    ]


def test_a_line_reports_its_file_name_and_trigger_errors_together() -> None:
    assert conf_errors("\n\nrun.exe = done-job-self && bad-job-self") == [
        "cb.conf:3:1: unknown extension '.exe' (use .py, .pl, .qcb or .sh)",
        "cb.conf:3:28: unknown trigger name 'bad' (use complete, done, submit, killed, "
        "blocked, failed, running, waiting, removed, modified or timeout)",
    ]


def test_bad_lines_are_skipped_and_good_ones_kept() -> None:
    text = (
        "good1.py = done-job-self\n"
        "bad1.py = done-work-self\n"
        "# between\n"
        "good2.sh = failed-job-parent || done-job-render\n"
        "bad2.py done-job-self\n"
        "good1.py = failed-job-self\n"
        "good3.pl = submit-job-self\n"
    )
    result = parse_callbacks_conf(text, "/srv/cb/callbacks.conf")
    assert [(e.filename, e.line) for e in result.entries] == [
        ("good1.py", 1),
        ("good2.sh", 4),
        ("good3.pl", 7),
    ]
    assert [str(d) for d in result.diagnostics] == [
        "/srv/cb/callbacks.conf:2:11: 'done-work-self' needs a work name, a work id or '*' "
        "after the context, e.g. done-work-self-*",
        "/srv/cb/callbacks.conf:5:9: syntax error: expected '=', found 'done-job-self'",
        "/srv/cb/callbacks.conf:6:1: 'good1.py' is already bound at line 1: "
        "join its triggers with '||' on one line",
    ]
    assert not result.ok


def test_a_file_after_a_bad_line_of_the_same_name_loads() -> None:
    result = parse_callbacks_conf("a.py = nope\na.py = done-job-self\n", "c")
    assert [e.line for e in result.entries] == [2]
    assert len(result.diagnostics) == 1


# --- canonical text and JSON -----------------------------------------------------------

_LABEL_CHARS = "andorXYZ019_."
_EXTRA_CHARS = "andorXYZ019_.:-@+%"

_labels = st.text(_LABEL_CHARS, min_size=1, max_size=8).filter(
    lambda s: not s.isdigit() and s not in ("self", "parent")
)
_contexts = st.one_of(
    st.sampled_from(["self", "parent"]),
    _labels,
    st.integers(1, 10**12).map(str),
)
_extras = st.one_of(st.just("*"), st.text(_EXTRA_CHARS, min_size=1, max_size=10))


@st.composite
def _terms(draw: st.DrawFn) -> Trigger:
    kind = draw(st.sampled_from(TYPES))
    extra = draw(_extras) if kind == "work" else None
    return Trigger(draw(st.sampled_from(NAMES)), kind, draw(_contexts), extra)


def _join(kind: type[TrigAnd] | type[TrigOr], children: list[TrigNode]) -> TrigNode:
    """The canonical shape the parser builds: no node directly inside one of its kind."""
    flat: list[TrigNode] = []
    for child in children:
        flat.extend(child.operands if isinstance(child, kind) else (child,))
    return kind(tuple(flat))


def _trees() -> st.SearchStrategy[TrigNode]:
    return st.recursive(
        _terms(),
        lambda children: st.builds(
            _join, st.sampled_from([TrigAnd, TrigOr]), st.lists(children, min_size=2, max_size=4)
        ),
        max_leaves=12,
    )


@settings(max_examples=150, deadline=None)
@given(_trees())
def test_format_then_parse_gives_the_same_tree(tree: TrigNode) -> None:
    text = format_trigger(tree)
    assert parse(text) == tree
    assert format_trigger(parse(text)) == text


def _render(tree: TrigNode, data: st.DataObject) -> str:
    """Any spelling of the tree: operator words, spacing and redundant parentheses."""
    if isinstance(tree, Trigger):
        text = tree.text()
    else:
        words = ["&&", "and", "AND"] if isinstance(tree, TrigAnd) else ["||", "or", "Or"]
        text = ""
        for index, operand in enumerate(tree.operands):
            inner = _render(operand, data)
            if isinstance(tree, TrigAnd) and isinstance(operand, TrigOr):
                inner = f"({inner})"
            if index:
                word = data.draw(st.sampled_from(words))
                gap = " " if word[0].isalpha() else data.draw(st.sampled_from(["", " ", "\t "]))
                text += f"{gap}{word}{gap}"
            text += inner
    return f"( {text} )" if data.draw(st.booleans()) and data.draw(st.booleans()) else text


@settings(max_examples=100, deadline=None)
@given(_trees(), st.data())
def test_any_spelling_parses_to_the_same_tree(tree: TrigNode, data: st.DataObject) -> None:
    assert parse(_render(tree, data)) == tree


@settings(max_examples=150, deadline=None)
@given(_trees())
def test_json_round_trip(tree: TrigNode) -> None:
    data = to_json(tree)
    assert from_json(json.loads(json.dumps(data))) == tree


def test_json_shape() -> None:
    tree = parse("done-job-a && (failed-work-self-* || killed-job-7)")
    assert to_json(tree) == {
        "op": "and",
        "args": [
            {"name": "done", "type": "job", "context": "a"},
            {
                "op": "or",
                "args": [
                    {"name": "failed", "type": "work", "context": "self", "extra": "*"},
                    {"name": "killed", "type": "job", "context": "7"},
                ],
            },
        ],
    }


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"op": "not", "args": [{"name": "done", "type": "job", "context": "self"}]},
        {"op": "and", "args": []},
        {"name": "finished", "type": "job", "context": "self"},
        {"name": "done", "type": "subjob", "context": "self", "extra": "1"},
        {"name": "done", "type": "job", "context": ""},
        {"name": "done", "type": "job", "context": "self", "extra": "x"},
        {"name": "done", "type": "work", "context": "self"},
    ],
)
def test_from_json_refuses_what_to_json_cannot_write(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        from_json(data)


# --- security checks on real files -------------------------------------------------------


def _callback_dir(tmp_path: Path, *files: str, conf: str | None = None) -> Path:
    directory = tmp_path / "callback"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    for name in files:
        (directory / name).write_text("print('hi')\n")
        (directory / name).chmod(0o644)
    if conf is not None:
        (directory / "callbacks.conf").write_text(conf)
        (directory / "callbacks.conf").chmod(0o644)
    return directory


def test_a_safe_file_passes(tmp_path: Path) -> None:
    directory = _callback_dir(tmp_path, "a.py")
    assert check_callback_file(directory, "a.py") is None  # not executable, and need not be


def test_refusals(tmp_path: Path) -> None:
    directory = _callback_dir(tmp_path, "g.py", "o.py")
    (directory / "sub").mkdir()
    (directory / "g.py").chmod(0o664)
    (directory / "o.py").chmod(0o646)
    assert check_callback_file(directory, "g.py") == (
        f"{directory}/g.py: writable by group or others (mode 0664)"
    )
    assert check_callback_file(directory, "o.py") == (
        f"{directory}/o.py: writable by group or others (mode 0646)"
    )
    assert check_callback_file(directory, "missing.py") == (
        f"{directory}/missing.py: No such file or directory"
    )
    assert check_callback_file(directory, "sub") == f"{directory}/sub: not a regular file"
    assert check_callback_file(directory, "../x.py") == (
        "'../x.py' is not a plain file name: a callback file is named without '/'"
    )
    assert check_callback_file(tmp_path / "nowhere", "a.py") == (
        f"{tmp_path}/nowhere: No such file or directory"
    )


def test_a_writable_directory_is_refused(tmp_path: Path) -> None:
    directory = _callback_dir(tmp_path, "a.py")
    directory.chmod(0o757)
    assert check_callback_file(directory, "a.py") == (
        f"{directory}: writable by group or others (mode 0757)"
    )
    directory.chmod(0o1777)  # sticky does not help the callback directory itself
    assert check_callback_file(directory, "a.py") == (
        f"{directory}: writable by group or others (mode 1777)"
    )


def test_directories_above_are_checked(tmp_path: Path) -> None:
    above = tmp_path / "shared"
    above.mkdir()
    directory = _callback_dir(above, "a.py")
    above.chmod(0o775)
    assert check_callback_file(directory, "a.py") == (
        f"{directory}: directory {above} is writable by group or others (mode 0775)"
    )
    above.chmod(0o1777)  # like /tmp: entries there are renamed by their owners only
    assert check_callback_file(directory, "a.py") is None


def test_a_symlink_out_of_the_directory_is_checked_where_it_lands(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o777)
    (elsewhere / "real.py").write_text("")
    (elsewhere / "real.py").chmod(0o644)
    directory = _callback_dir(tmp_path)
    (directory / "link.py").symlink_to(elsewhere / "real.py")
    assert check_callback_file(directory, "link.py") == (
        f"{elsewhere}: writable by group or others (mode 0777)"
    )


def test_the_owner_must_be_the_daemons_user_or_root(tmp_path: Path) -> None:
    directory = _callback_dir(tmp_path, "a.py")
    me = os.geteuid()
    if me == 0:
        os.chown(directory / "a.py", 4242, -1)
        assert check_callback_file(directory, "a.py") == (
            f"{directory}/a.py: owned by uid 4242, neither the daemon's user nor root"
        )
        assert check_callback_file(directory, "a.py", uid=4242) is None
    else:
        assert check_callback_file(directory, "a.py", uid=me + 1) == (
            f"{directory}: owned by uid {me}, neither the daemon's user nor root"
        )


# --- loading a directory ---------------------------------------------------------------


def test_load_the_seed_directory(tmp_path: Path) -> None:
    names = ("logFailuresToDB.py", "mail-status.qcb", "checkWork.pl", "submitted.py")
    directory = _callback_dir(tmp_path, *names, conf=SEED_CONF)
    result = load_callback_dir(directory)
    assert result.diagnostics == []
    assert [e.filename for e in result.entries] == list(names)
    assert result.entries == parse_callbacks_conf(SEED_CONF, "x").entries


def test_load_keeps_the_good_lines(tmp_path: Path) -> None:
    conf = (
        "ok.py = done-job-self\n"
        "loose.sh = failed-job-self\n"
        "absent.pl = done-job-self\n"
        "broken.py = done-jobs-self\n"
        "  ok.qcb = done-work-self-*\n"
    )
    directory = _callback_dir(tmp_path, "ok.py", "loose.sh", "broken.py", "ok.qcb", conf=conf)
    (directory / "loose.sh").chmod(0o666)
    result = load_callback_dir(directory)
    source = f"{directory}/callbacks.conf"
    assert [(e.filename, e.line) for e in result.entries] == [("ok.py", 1), ("ok.qcb", 5)]
    assert [str(d) for d in result.diagnostics] == [
        f"{source}:2:1: refused: {directory}/loose.sh: writable by group or others (mode 0666)",
        f"{source}:3:1: refused: {directory}/absent.pl: No such file or directory",
        f"{source}:4:18: unknown trigger type 'jobs' (use job or work)",
    ]


def test_load_without_a_directory_or_a_conf_is_empty(tmp_path: Path) -> None:
    assert load_callback_dir(tmp_path / "none") == parse_callbacks_conf("", "x")
    directory = _callback_dir(tmp_path, "a.py")
    result = load_callback_dir(directory)
    assert result.entries == []
    assert result.diagnostics == []


def test_load_a_path_that_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert [str(d) for d in load_callback_dir(tmp_path / "file").diagnostics] == [
        f"{tmp_path}/file/callbacks.conf:1:1: {tmp_path}/file: not a directory"
    ]


def test_load_checks_where_a_symlinked_conf_lands(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    elsewhere.chmod(0o777)
    (elsewhere / "real.conf").write_text("a.py = done-job-self\n")
    (elsewhere / "real.conf").chmod(0o644)
    directory = _callback_dir(tmp_path, "a.py")
    (directory / "callbacks.conf").symlink_to(elsewhere / "real.conf")
    assert [str(d) for d in load_callback_dir(directory).diagnostics] == [
        f"{directory}/callbacks.conf:1:1: refused: {elsewhere}: writable by group or others "
        "(mode 0777)"
    ]


def test_load_refuses_an_unsafe_directory_or_conf_whole(tmp_path: Path) -> None:
    directory = _callback_dir(tmp_path, "a.py", conf="a.py = done-job-self\n")
    source = f"{directory}/callbacks.conf"
    directory.chmod(0o775)
    result = load_callback_dir(directory)
    assert result.entries == []
    assert [str(d) for d in result.diagnostics] == [
        f"{source}:1:1: refused: {directory}: writable by group or others (mode 0775)"
    ]
    directory.chmod(0o755)
    (directory / "callbacks.conf").chmod(0o646)
    assert [str(d) for d in load_callback_dir(directory).diagnostics] == [
        f"{source}:1:1: refused: {source}: writable by group or others (mode 0646)"
    ]
    (directory / "callbacks.conf").chmod(0o644)
    assert load_callback_dir(directory).ok


def test_load_reports_a_conf_that_is_not_text(tmp_path: Path) -> None:
    directory = _callback_dir(tmp_path, "a.py")
    (directory / "callbacks.conf").write_bytes(b"a.py = done-job-self \xff\n")
    (directory / "callbacks.conf").chmod(0o644)
    [diagnostic] = load_callback_dir(directory).diagnostics
    assert str(diagnostic) == f"{directory}/callbacks.conf:1:1: not UTF-8 (invalid start byte)"


# --- the callback path -------------------------------------------------------------------

STATE = Path("/var/lib/tock")


def test_the_default_is_the_state_directory() -> None:
    assert callback_path(None, {}, STATE) == [STATE / "callback"]
    assert callback_path(None, {"TOCK_CALLBACK_PATH": ""}, STATE) == [STATE / "callback"]


def test_the_environment_wins_over_the_configuration() -> None:
    env = {"TOCK_CALLBACK_PATH": "/env/a"}
    assert callback_path("/conf/a,/conf/b", env, STATE) == [Path("/env/a")]
    assert callback_path("/conf/a,/conf/b", {}, STATE) == [Path("/conf/a"), Path("/conf/b")]


def test_splitting() -> None:
    value = " /a , ,/b/,/a,, /c/d "
    assert callback_path(value, {}, STATE) == [Path("/a"), Path("/b"), Path("/c/d")]
    assert callback_path(None, {"TOCK_CALLBACK_PATH": value}, STATE) == [
        Path("/a"),
        Path("/b"),
        Path("/c/d"),
    ]
    assert callback_path("", {}, STATE) == []  # configured off
    assert callback_path(" , ", {}, STATE) == []


def test_a_relative_directory_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^universal_callback_path: 'cb' is not an absolute"):
        callback_path("/a,cb", {}, STATE)
    with pytest.raises(ValueError, match=r"^TOCK_CALLBACK_PATH: 'x/y' is not an absolute"):
        callback_path(None, {"TOCK_CALLBACK_PATH": "x/y"}, STATE)
