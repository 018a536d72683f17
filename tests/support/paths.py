from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
FIXTURES = REPO / "fixtures"
VENV_BIN = Path(sys.executable).parent
OCIBUILD = VENV_BIN / "ocibuild"
