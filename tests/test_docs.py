"""The documentation: README.md stays a short front door, docs/config.md is what the code generates,
and every relative link and anchor of README.md, CHANGELOG.md and docs/*.md resolves."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
SCRIPT = DOCS / "make_config_reference.py"
MAX_README_LINES = 200


def _pages() -> list[Path]:
    return [README, ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


def _script():
    spec = importlib.util.spec_from_file_location("make_config_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- Markdown: headings, anchors and links, as GitHub renders them ------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def _prose_lines(text: str):
    """``(line number, line)`` of every line outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text, lower case, punctuation other than
    ``-`` and ``_`` removed, spaces as hyphens."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = CODE_SPAN.sub(lambda m: m.group(2), text)
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)  # emphasis markers
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a page: its headings' slugs, repeated slugs numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in _prose_lines(text):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def links(text: str):
    """``(line number, target)`` of every Markdown link and image outside code."""
    for number, line in _prose_lines(text):
        for m in LINK.finditer(CODE_SPAN.sub("", line)):
            yield number, m.group(1)


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of ``page`` whose file, or whose ``#anchor`` in it, does not exist
    (named relative to ``root``)."""
    problems = []
    for number, target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no file {dest}")
            continue
        if anchor:
            if dest.suffix != ".md" or dest.is_dir():
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading with the anchor #{anchor} in {dest.name}")
    return problems


# -- the generated config reference --------------------------------------------------------------

def test_config_reference_is_what_the_code_generates():
    generated = _script().generate()
    committed = (DOCS / "config.md").read_text(encoding="utf-8")
    assert committed == generated, (
        "docs/config.md differs from what the code generates; run "
        "`python docs/make_config_reference.py` and commit the page")


def test_config_reference_lists_every_key_and_device_field():
    from relaxsim import config
    from relaxsim.devices import RECORDS

    text = _script().generate()
    for section, keys in config.SCHEMA.items():
        for key in keys:
            assert f"| `{section}.{key}` |" in text
    for kind, record in RECORDS.items():
        assert f"### {kind} fields" in text
        for key in record.keys():
            assert f"| `{key}` |" in text


def test_generation_is_deterministic():
    script = _script()
    assert script.generate() == script.generate()


def test_check_passes_on_the_generated_page_and_fails_on_an_edited_one(tmp_path, capsys):
    script = _script()
    page = tmp_path / "config.md"
    assert script.main(["--out", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == script.generate()
    assert script.main(["--check", "--out", str(page)]) == 0

    lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if line.startswith("| `network.hidden`"))
    lines[row] = lines[row].replace("`64`", "`65`")
    page.write_text("".join(lines), encoding="utf-8")
    assert page.read_text(encoding="utf-8") != script.generate()
    assert script.main(["--check", "--out", str(page)]) == 1
    assert "run it to update the page" in capsys.readouterr().err

    page.unlink()
    assert script.main(["--check", "--out", str(page)]) == 1


# -- the README ----------------------------------------------------------------------------------

def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"
    body = [line for line in lines[1:] if line.strip()]
    assert lines[0].startswith("# ")
    assert body[0].startswith("```")
    assert body[1].startswith("make run")
    assert body[2].startswith("make test")
    assert body[3].startswith("```")


# -- links ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    assert page.exists()
    assert broken_links(page) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The `run` command\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#the-run-command) [self](#page)\n"
                    "[gone](missing.md) [no anchor](other.md#nowhere) [web](https://example.org)\n"
                    "```\n[in code](missing-too.md)\n```\n", encoding="utf-8")
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 2
    assert "missing.md" in problems[0] and "#nowhere" in problems[1]


@pytest.mark.parametrize("heading, anchor", [
    ("Checkpoints and resume", "checkpoints-and-resume"),
    ("relaxsim run", "relaxsim-run"),
    ("`relaxsim report`", "relaxsim-report"),
    ("Configs and --set", "configs-and---set"),
    ("switch fields", "switch-fields"),
    ("What the devices do", "what-the-devices-do"),
    ("Tasks: data, files!", "tasks-data-files"),
    ("`task_name` key", "task_name-key"),
])
def test_slugs_follow_github(heading, anchor):
    assert slug(heading) == anchor


def test_repeated_headings_are_numbered():
    assert anchors("# A\n## Notes\n## Notes\n```\n# Notes\n```\n") == {"a", "notes", "notes-1"}
