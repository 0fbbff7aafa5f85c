"""Docs that cannot drift: the schema, the configuration keys and the commands they describe.

docs/schema.md must have a `## name` section for every table and view, with a
`column | type | meaning` table listing exactly its columns; docs/config.md a `## key`
section for every configuration key; and every CLI command must appear as `tock <command>`
in README.md or in docs/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import journal
from engine.cli import cli
from engine.config import _KEYS, parse_config
from engine.store import open_db

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCHEMA_DOC = DOCS / "schema.md"
CONFIG_DOC = DOCS / "config.md"

_HEADING = re.compile(r"^## (.+?)\s*$", re.MULTILINE)
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _without_code_blocks(text: str) -> str:
    """Fenced blocks removed, so a `## ` inside an example never counts as a heading."""
    return _FENCE.sub("", text)


def sections(text: str) -> dict[str, str]:
    """The body under every `## heading`, up to the next `## ` heading."""
    text = _without_code_blocks(text)
    found: dict[str, str] = {}
    matches = list(_HEADING.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        found[match.group(1)] = text[match.end() : end]
    return found


def table_rows(section: str, header: tuple[str, ...]) -> list[list[str]]:
    """Cells of the body rows of the Markdown table in `section` with this header."""
    rows: list[list[str]] = []
    inside = False
    for line in section.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            inside = False
            continue
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if tuple(cells) == header:
            inside = True
        elif inside and not all(set(cell) <= set("-: ") for cell in cells):
            rows.append(cells)
    return rows


def schema_objects(tmp_path: Path) -> dict[str, list[tuple[str, str]]]:
    """Every table and view of a fresh database: name -> [(column, declared type)]."""
    conn = open_db(tmp_path / "x.db")
    try:
        names = [
            str(row[0])
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name != 'sqlite_sequence' ORDER BY name"
            )
        ]
        return {
            name: [(str(row[1]), str(row[2])) for row in conn.execute(f"PRAGMA table_info({name})")]
            for name in names
        }
    finally:
        conn.close()


def test_every_table_and_view_and_column_is_documented(tmp_path: Path) -> None:
    objects = schema_objects(tmp_path)
    assert {"schema_migrations", "journal", "jobs", "v_jobs", "v_events", "v_pending"} <= set(
        objects
    )
    documented = sections(SCHEMA_DOC.read_text(encoding="utf-8"))
    problems: list[str] = []
    for name, columns in objects.items():
        if name not in documented:
            problems.append(f"no '## {name}' section")
            continue
        body = documented[name]
        rows = {row[0]: row for row in table_rows(body, ("column", "type", "meaning"))}
        for column, declared in columns:
            if f"`{column}`" not in body:
                problems.append(f"{name}.{column}: not mentioned")
            elif f"`{column}`" not in rows:
                problems.append(f"{name}.{column}: no row in its column | type | meaning table")
            elif declared and rows[f"`{column}`"][1] != declared:
                problems.append(
                    f"{name}.{column}: documented as {rows[f'`{column}`'][1]}, declared {declared}"
                )
        stale = set(rows) - {f"`{column}`" for column, _ in columns}
        problems.extend(f"{name}: documents {cell}, which does not exist" for cell in sorted(stale))
    assert not problems, "docs/schema.md is out of date:\n" + "\n".join(problems)


def test_every_journal_kind_is_documented() -> None:
    text = SCHEMA_DOC.read_text(encoding="utf-8")
    missing = sorted(kind for kind in journal.KINDS if f"`{kind}`" not in text)
    assert not missing, f"journal kinds missing from docs/schema.md: {missing}"
    journal_section = sections(text)["journal"]
    listed = {row[0].strip("`") for row in table_rows(journal_section, _kinds_header(text))}
    assert listed == set(journal.KINDS), "the journal kinds table lists other kinds than KINDS"


def _kinds_header(text: str) -> tuple[str, ...]:
    for line in _without_code_blocks(text).splitlines():
        cells = tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
        if line.lstrip().startswith("|") and cells[0] == "kind":
            return cells
    raise AssertionError("docs/schema.md has no table whose first column is 'kind'")


def test_every_config_key_has_a_section() -> None:
    documented = set(sections(CONFIG_DOC.read_text(encoding="utf-8")))
    missing = sorted(set(_KEYS) - documented)
    assert not missing, f"configuration keys missing from docs/config.md: {missing}"
    # A section named like a key (one lower-case word) must be a key that still exists.
    stale = sorted(h for h in documented if re.fullmatch(r"[a-z_]+", h) and h not in _KEYS)
    assert not stale, f"docs/config.md documents keys that do not exist: {stale}"


def test_config_examples_are_valid(tmp_path: Path) -> None:
    text = CONFIG_DOC.read_text(encoding="utf-8")
    examples = re.findall(r"^```toml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert examples, "docs/config.md has no TOML examples"
    for example in examples:
        parse_config(example, tmp_path / "tock.toml")  # raises TockError when wrong
    complete = parse_config(examples[-1], tmp_path / "tock.toml")
    unset = sorted(key for key in _KEYS if key not in re.findall(r"^(\w+) =", examples[-1], re.M))
    assert not unset, f"the complete example in docs/config.md lacks {unset}"
    assert complete.source == tmp_path / "tock.toml"


def _command_docs() -> str:
    paths = sorted(DOCS.glob("*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        paths.append(readme)
    return "\n".join(path.read_text(encoding="utf-8") for path in paths)


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_is_documented(command: str) -> None:
    pattern = re.compile(rf"(?<![\w-])tock {re.escape(command)}(?![\w-])")
    assert pattern.search(_command_docs()), (
        f"'tock {command}' appears neither in README.md nor in docs/*.md"
    )
