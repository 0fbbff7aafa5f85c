"""`-J 'name[1-100]%5'`: the index-list parser, its canonical form and its errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.workspec import MAX_INDEX, MAX_ITEMS, parse_work_name


def test_ranges_lists_steps_and_limit() -> None:
    spec = parse_work_name("render[1-5,9,20-26:3]%2").spec
    assert spec is not None
    assert spec.name == "render"
    assert spec.indices == (1, 2, 3, 4, 5, 9, 20, 23, 26)
    assert spec.limit == 2
    assert spec.text == "[1-5,9,20-26:3]%2"


def test_a_plain_name_has_no_items() -> None:
    spec = parse_work_name("nightly 50% done").spec
    assert spec is not None and not spec.is_array and spec.name == "nightly 50% done"


def test_duplicates_collapse_and_run_in_order() -> None:
    spec = parse_work_name("a[5,1-3,2]").spec
    assert spec is not None and spec.indices == (1, 2, 3, 5)


def test_frame_zero_and_an_unnamed_array() -> None:
    spec = parse_work_name("[0-2]").spec
    assert spec is not None and spec.name == "" and spec.indices == (0, 1, 2)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a[]", "-J:1:3: empty index list"),
        ("a[1-]", "-J:1:5: expected the end of a range"),
        ("a[3-1]", "-J:1:5: range 3-1 ends before it starts"),
        ("a[1-9:0]", "-J:1:7: a step must be at least 1"),
        ("a[1;2]", "-J:1:4: expected ',' or ']'"),
        ("a[1-3", "-J:1:6: missing ']'"),
        ("a[1-3]%0", "-J:1:8: %0"),
        ("a[1-3]x", "-J:1:7: expected '%N'"),
        ("a[1-3]%2x", "-J:1:9: unexpected 'x'"),
        (f"a[1-{MAX_INDEX + 1}]", "-J:1:5:"),
        (f"a[1-{MAX_ITEMS + 1}]", "-J:1:3: more than"),
    ],
)
def test_errors_name_the_column(text: str, where: str) -> None:
    result = parse_work_name(text)
    assert not result.ok
    assert result.diagnostics[0].startswith(where), result.diagnostics


ranges = st.lists(
    st.tuples(st.integers(0, 500), st.integers(0, 50), st.integers(1, 7)), min_size=1, max_size=6
)


@given(ranges, st.none() | st.integers(1, 99))
def test_the_canonical_form_parses_to_the_same_items(
    items: list[tuple[int, int, int]], limit: int | None
) -> None:
    parts = []
    expected: set[int] = set()
    for first, length, step in items:
        last = first + length
        parts.append(f"{first}-{last}:{step}" if length else str(first))
        expected.update(range(first, last + 1, step))
    text = "job[" + ",".join(parts) + "]" + ("" if limit is None else f"%{limit}")
    spec = parse_work_name(text).spec
    assert spec is not None
    assert spec.indices == tuple(sorted(expected))
    again = parse_work_name(spec.name + spec.text).spec
    assert again == spec


@given(st.text(max_size=30))
def test_any_text_is_a_result_never_an_exception(text: str) -> None:
    result = parse_work_name(text)
    assert result.ok or result.diagnostics[0].startswith("-J:1:")
