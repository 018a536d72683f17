"""A git URL as the build context or a `--build-context NAME=<git url>`: the tree checked
out once per commit into the store, then read like a local directory.

    ROOT/git/trees/<key>/     a checkout (key: remote, commit, keep-git-dir); never
                              changed once made, so later builds of the same commit
                              reuse it and its context checksums

As BuildKit's dockerui DetectGitContext: the fragment's ref and subdirectory, and the
.git directory kept only when asked (the URL's `keep-git-dir` query, or the build
argument BUILDKIT_CONTEXT_KEEP_GIT_DIR).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.oci.digest import hex_of_bytes
from ocibuild.sources import git_url

if TYPE_CHECKING:
    from ocibuild.solver.secret_source import SecretSource

TREES = "trees"  # under ROOT/git


class GitContexts:
    """Checks git URL contexts out for one build."""

    def __init__(self, store_root: Path, secrets: Mapping[str, SecretSource],
                 ssh: Mapping[str, Path], *, keep_git_dir: bool = False) -> None:
        self.root = Path(store_root)
        self.secrets = secrets
        self.ssh = ssh
        self.keep_git_dir = keep_git_dir
        self.commits: dict[str, str] = {}  # each URL checked out -> its commit

    def directory(self, text: str) -> Path | None:
        """The checked-out directory `text` names, None when it is a local directory or
        not a git URL."""
        if os.path.isdir(text):
            return None
        ref = git_url.parse(text)
        if ref is None:
            return None
        import shutil  # here: only a git context needs them
        import tempfile

        from ocibuild.cache import temporaries
        from ocibuild.solver.git_source import git_auth
        from ocibuild.sources.git import GIT_DIR, GitRepos, subdir_of

        keep = ref.keep_git_dir if ref.keep_git_dir is not None else self.keep_git_dir
        auth = git_auth(ref, self.secrets, self.ssh)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # a new store's root
        tmp = Path(tempfile.mkdtemp(prefix="git-context-",
                                    dir=temporaries.process_dir(self.root)))
        try:
            repos = GitRepos(self.root, tmp)
            resolved = repos.resolve(ref, auth)
            if ref.checksum:
                from ocibuild.solver.git_source import check_commit

                check_commit(ref.remote, ref.checksum, resolved)
            self.commits[text] = resolved.commit
            key = hex_of_bytes(repr([ref.remote, resolved.commit, resolved.ref, keep,
                                     ref.submodules]).encode())[:32]
            tree = self.root / GIT_DIR / TREES / key
            if not tree.is_dir():
                whole = git_url.GitRef(ref.remote, ref.scheme, ref.host, ref.ref)
                made = repos.checkout(whole, resolved, tmp / "tree", keep_git_dir=keep,
                                      submodules=ref.submodules, auth=auth)
                tree.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):  # another build made it first
                    made.rename(tree)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not ref.subdir:
            return tree
        return subdir_of(tree, ref.subdir, f"git source {git_url.redact(ref.remote)}")


def for_build(root: str | os.PathLike[str] | None, secrets: Mapping[str, SecretSource],
              ssh: Mapping[str, Path], build_args: Mapping[str, str]) -> GitContexts:
    """The git contexts of a build on the store at `root` (None: the default store)."""
    from ocibuild import store_paths

    keep = build_args.get("BUILDKIT_CONTEXT_KEEP_GIT_DIR", "").lower() in ("1", "t", "true")
    return GitContexts(Path(root) if root else Path(store_paths.default_root()), secrets,
                       ssh, keep_git_dir=keep)
