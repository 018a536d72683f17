"""The examples of docs/python-api.md run, in order, as a reader would run them: as the
unprivileged user, in one fresh directory, against a store holding busybox:latest and
a registry at $REGISTRY (plain HTTP) holding library/busybox:latest."""

from __future__ import annotations

from pathlib import Path

from tests.api.api_runner import run_as_user
from tests.build.conftest import Builder
from tests.docs.markdown_blocks import code_blocks
from tests.registry.conftest import BaseImages
from tests.registry.test_build_integration import push_base
from tests.support.paths import REPO
from tests.support.registry_server import RegistryServer

DOC = REPO / "docs" / "python-api.md"


def python_blocks() -> list[tuple[str, str]]:
    """(where, code) of each ```python block of the document."""
    return [(b.where, b.text) for b in code_blocks(DOC) if b.lang == "python"]


def test_the_document_has_examples() -> None:
    assert len(python_blocks()) >= 5


def test_python_api_examples_run(builder: Builder, http_registry: RegistryServer,
                                 images: BaseImages, tmp_path: Path) -> None:
    push_base(http_registry, images, f"{http_registry.host}/library/busybox:latest",
              tmp_path)
    workdir = builder.user.make_tempdir("ocib-api-docs-")
    try:
        for where, code in python_blocks():
            proc = run_as_user(builder, code, cwd=workdir,
                               env={"REGISTRY": http_registry.host})
            assert proc.returncode == 0, f"{where}:\n{proc.stdout}{proc.stderr}"
    finally:
        from tests.support.users import remove_tree

        remove_tree(workdir)
