"""docs/architecture.md stays true to the tree: every package of ocibuild/ is described,
and every module it names exists."""

from __future__ import annotations

import re

from tests.support.paths import REPO

PAGE = REPO / "docs" / "architecture.md"
PACKAGE = REPO / "ocibuild"


def test_every_package_is_described() -> None:
    text = PAGE.read_text(encoding="utf-8")
    packages = sorted(p.parent.relative_to(PACKAGE).as_posix()
                      for p in PACKAGE.glob("*/__init__.py"))
    missing = [name for name in packages if f"{name}/" not in text]
    assert not missing, f"docs/architecture.md does not describe {missing}"


def test_every_module_named_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    modules = {p.name for p in PACKAGE.rglob("*.py")}
    named = set(re.findall(r"`(?:[\w/]+/)?(\w+\.py)`", text))
    assert named, "the page names no module"
    gone = sorted(named - modules)
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"
