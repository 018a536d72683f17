"""Every relative link in docs/*.md and the README leads to a file of the repository."""

from __future__ import annotations

import re

from tests.support.paths import REPO

LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_resolve() -> None:
    broken = []
    for doc in [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("#"):
                continue
            if not (doc.parent / target.split("#")[0]).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert not broken, broken
