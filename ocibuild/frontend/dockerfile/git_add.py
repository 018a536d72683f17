"""ADD of a git URL: the GitSource a source word names, with BuildKit's rules for
--keep-git-dir and --checksum (frontend/dockerfile/dockerfile2llb/convert_copy.go)."""

from __future__ import annotations

from ocibuild.errors import OcibuildError
from ocibuild.graph import GitSource
from ocibuild.sources.git_url import parse


def git_source(word: str, *, add: bool, keep_git_dir: bool | None,
               checksum: str) -> GitSource | None:
    """The git source `word` names (None: not a git URL). Raises OcibuildError for a git
    URL in COPY and for flags that contradict the URL's query."""
    ref = parse(word)
    if ref is None:
        return None
    if not add:
        raise OcibuildError("source can't be a git ref for COPY")
    if keep_git_dir is not None and ref.keep_git_dir is not None \
            and keep_git_dir != ref.keep_git_dir:
        raise OcibuildError("inconsistent keep-git-dir configuration")
    keep = ref.keep_git_dir if ref.keep_git_dir is not None else bool(keep_git_dir)
    if checksum and ref.checksum and checksum != ref.checksum:
        raise OcibuildError(f"checksum mismatch {checksum!r} != {ref.checksum!r}")
    return GitSource(remote=ref.remote, ref=ref.ref, subdir=ref.subdir, keep_git_dir=keep,
                     checksum=checksum or ref.checksum, submodules=ref.submodules)
