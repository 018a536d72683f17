"""docs/cli.md is what scripts/gen_cli_reference.py makes of the commands as they are,
and its buildx table says what `ocibuild build` really does with each flag."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

from tests.support.paths import OCIBUILD, REPO

GENERATOR = REPO / "scripts" / "gen_cli_reference.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_reference", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    proc = subprocess.run([sys.executable, GENERATOR, "--check"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_flags_marked_refused_are_refused() -> None:
    """(Generating checks that flags marked supported or accepted exist.)"""
    gen = _generator()
    for flag in gen.BUILDX_FLAGS:
        if flag.status != gen.REFUSED:
            continue
        answer = subprocess.run([OCIBUILD, "build", flag.names[-1], "x", "."],
                                capture_output=True, text=True, timeout=60)
        assert answer.returncode == 2 and "No such option" in answer.stderr, \
            (flag.names, answer.stderr)
