from __future__ import annotations

import os
from pathlib import Path

import pytest

from ocibuild.cache import Store
from ocibuild.exporter import BuildResult
from tests.support.store_images import layer_from_dir, result_from_layers, write_tree


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store")


@pytest.fixture
def two_layer_result(store: Store, tmp_path: Path) -> BuildResult:
    """Layer 1: /etc/motd, /bin/tool, /data/old; layer 2 deletes /data/old, adds /data/new."""
    base = write_tree(tmp_path / "l1", {"etc/motd": "hello\n", "bin/tool": "#!/bin/sh\n",
                                        "data/old": "old\n"})
    os.chmod(base / "bin/tool", 0o755)
    upper = write_tree(tmp_path / "l2", {"data/new": "new\n"})
    (upper / "data" / ".wh.old").write_text("")
    return result_from_layers([layer_from_dir(store, base), layer_from_dir(store, upper)],
                              Cmd=["/bin/tool"], Env=["PATH=/bin"])
