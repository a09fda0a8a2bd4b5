"""The docs as a newcomer meets them: a short README, every page reachable, no dead link or test name."""

from __future__ import annotations

import re
from pathlib import Path

from preview_local.cfn_template import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
DOCS_MAP = DOCS / "index.md"
README_MAX_LINES = 220


_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose_lines(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks (a link in a code sample is not a link)."""
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _links(page: Path) -> list[str]:
    found: list[str] = []
    for line in _prose_lines(page):
        for match in _LINK.finditer(line):
            found.append(match.group(1) or match.group(2))
    return found


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower-cased, punctuation but '-' and '_' dropped, spaces as '-'."""
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for line in _prose_lines(page):
        heading = _HEADING.match(line)
        if not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(2))
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _resolve(page: Path, target: str) -> tuple[Path, str]:
    path, _, anchor = target.partition("#")
    return ((page.parent / path).resolve() if path else page.resolve()), anchor


def _in_project(path: Path) -> bool:
    return path.is_relative_to(PROJECT_ROOT.resolve())


def test_the_readme_stays_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move the detail to a docs/ page"
    )


def test_every_docs_page_is_linked_from_the_readme_and_the_docs_map() -> None:
    for index in (README, DOCS_MAP):
        linked = {_resolve(index, target)[0] for target in _links(index) if _relative(target)}
        unlinked = [
            p.relative_to(PROJECT_ROOT).as_posix()
            for p in DOCS.glob("*.md")
            if p != index and p.resolve() not in linked
        ]
        assert not unlinked, f"not linked from {index.relative_to(PROJECT_ROOT)}: {unlinked}"


def test_the_readme_links_deploy_and_troubleshooting_directly() -> None:
    targets = {_resolve(README, t)[0] for t in _links(README) if _relative(t)}
    assert (DOCS / "deploy.md").resolve() in targets
    assert (DOCS / "troubleshooting.md").resolve() in targets


def test_every_relative_link_resolves_to_a_file_and_heading_that_exist() -> None:
    broken: list[str] = []
    for page in _pages():
        for target in _links(page):
            if not _relative(target):
                continue
            path, anchor = _resolve(page, target)
            if not _in_project(path):
                continue  # the team's shared spec and style guide live beside the repository
            where = f"{page.relative_to(PROJECT_ROOT).as_posix()}: {target}"
            if not path.exists():
                broken.append(f"{where} (no such file)")
                continue
            if anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{where} (no such heading)")
    assert not broken, "dead links:\n" + "\n".join(broken)


def test_every_test_the_docs_name_exists() -> None:
    missing: list[str] = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"(tests/[\w/]+\.py)(?:::(\w+))?", text):
            test_file = PROJECT_ROOT / match.group(1)
            exists = test_file.exists() and (
                not match.group(2)
                or re.search(
                    rf"^(?:async )?def {match.group(2)}\(", test_file.read_text(encoding="utf-8"), re.M
                )
            )
            if not exists:
                missing.append(f"{page.name}: {match.group(0)}")
    assert not missing, "the docs name tests that do not exist:\n" + "\n".join(missing)


def test_the_link_checker_sees_links_headings_and_code_blocks_as_github_does(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# `sam deploy --guided`\n## Findings (issue 8)\n## Findings (issue 8)\n"
        "See [a](other.md#x) and ![pic](demo.png) and [b](https://example.com).\n"
        "```sh\n[not a link](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert _links(page) == ["other.md#x", "demo.png", "https://example.com"]
    assert _anchors(page) == {"sam-deploy---guided", "findings-issue-8", "findings-issue-8-1"}
