"""`-` for the build's inputs, as docker reads it: `build -f - DIR` takes the Dockerfile
from stdin; `build -` takes a build context archive from stdin (a tar, plain or
compressed) or, when stdin is not one, a Dockerfile with an empty context."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ocibuild.errors import UsageError


@contextlib.contextmanager
def stdin_inputs(context: str, dockerfile: str | None,
                 stdin: BinaryIO) -> Iterator[tuple[str, str | None]]:
    """(context, dockerfile) as paths the build reads; what came from stdin is in a
    temporary directory until the block ends."""
    if context != "-" and dockerfile != "-":
        yield context, dockerfile
        return
    if context == "-" and dockerfile == "-":
        raise UsageError("the build context and the Dockerfile (-f -) cannot both come "
                         "from stdin")
    tmp = Path(tempfile.mkdtemp(prefix="ocibuild-stdin-"))
    try:
        if dockerfile == "-":
            yield context, str(_write(tmp / "Dockerfile", stdin))
            return
        from ocibuild.oci.compression import open_archive

        tree = tmp / "context"
        tree.mkdir()
        stream, is_archive = open_archive(stdin)
        if not is_archive:
            if dockerfile is not None:
                raise UsageError(f"-f {dockerfile}: the build context from stdin is a "
                                 "Dockerfile, not an archive holding one")
            yield str(tree), str(_write(tmp / "Dockerfile", stream))
            return
        from ocibuild.errors import OcibuildError
        from ocibuild.oci.extract import extract_archive

        try:
            extract_archive(stream, tree, chown=False)
        except OcibuildError as exc:
            raise UsageError(f"the build context from stdin: {exc.message}") from None
        inside = None if dockerfile is None else tree / dockerfile.lstrip("/")
        if inside is not None and not inside.is_file():
            raise UsageError(f"-f {dockerfile}: not found in the build context from stdin")
        yield str(tree), None if inside is None else str(inside)
    finally:
        shutil.rmtree(tmp, onerror=_writable_and_retry)


def _writable_and_retry(function: object, path: str, exc_info: object) -> None:
    """An archive's directory without write permission: allow it, then remove again."""
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def _write(path: Path, src: BinaryIO) -> Path:
    with open(path, "wb") as out:
        shutil.copyfileobj(src, out)
    os.chmod(path, 0o644)
    return path
