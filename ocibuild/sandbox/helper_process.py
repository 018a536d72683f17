"""The command line that starts a sandbox helper process: the fork server
(zygote.py), run_in_userns's helper (userns_entry.py), the availability check.

`python -I -S`: no site-packages scan and no environment influence; a helper needs the
standard library and this package, whose parent directory goes on sys.path (found from
this file: no engine package imports the package root). A helper that needs more gets
the builder's sys.path in its first message.
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # the directory holding ocibuild/
_BOOT = f"import sys;sys.path.insert(0,{_PACKAGE_PARENT!r});from MODULE import main;main()"


def helper_command(module: str, *args: str) -> list[str]:
    """Run `module`'s main() in a new interpreter with `args` as its sys.argv[1:]."""
    return [sys.executable, "-I", "-S", "-c", _BOOT.replace("MODULE", module), *args]
