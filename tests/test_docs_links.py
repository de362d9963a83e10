"""The README and docs/*.md: every relative link resolves, and the README's contents list every section."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _text_outside_code(page):
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)


def _anchors(page):
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", _text_outside_code(page), flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for link in LINK.findall(_text_outside_code(page)):
        if re.match(r"[a-z]+:", link):
            continue                                    # http(s), mailto: not checked offline
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no file {target.relative_to(ROOT)})")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link} (no heading with anchor #{anchor})")
    assert not broken, f"{page.name}: {broken}"


def test_readme_contents_list_every_section():
    readme = ROOT / "README.md"
    sections = [_slug(h) for h in re.findall(r"^## (.*)$", _text_outside_code(readme), flags=re.M)]
    listed = re.findall(r"^- \[.*\]\(#([^)]*)\)$", readme.read_text(), flags=re.M)
    assert listed == sections
