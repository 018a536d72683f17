from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
FIXTURES = REPO / "fixtures"
VENV_BIN = Path(sys.executable).parent
OCIBUILD = VENV_BIN / "ocibuild"


def without_shared(data: Path, *values: object) -> list[object]:
    """In place of a parameter list read from `data` under ../shared when that is not
    beside this checkout (a fresh clone): one case that skips, saying why."""
    import pytest

    reason = (f"{data} is missing: ../shared (BuildKit's conformance data) is not beside "
              "this checkout")
    return [pytest.param(*values, marks=pytest.mark.skip(reason=reason))]


def needs_shared(data: Path) -> object:
    """A skip mark for a test that reads `data` under ../shared, when it is missing."""
    import pytest

    return pytest.mark.skipif(not data.is_dir(), reason=f"{data} is missing: ../shared is "
                              "not beside this checkout")
