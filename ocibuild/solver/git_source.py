"""Git sources in a solve: each GitSource's cache key (its ref resolved to a commit, so an
unchanged branch head is a cache hit after one `git ls-remote`) and, only for a step
that runs, its checked-out tree.

Credentials are BuildKit's: a `--secret` named GIT_AUTH_HEADER.<host>, GIT_AUTH_TOKEN.<host>,
GIT_AUTH_HEADER or GIT_AUTH_TOKEN (the first given wins) for HTTP remotes; the `--ssh
default` agent for ssh remotes (BuildKit: source/git/source.go, client/llb/source.go).
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError
from ocibuild.oci.digest import hex_of_bytes
from ocibuild.sources.git_url import redact

if TYPE_CHECKING:
    from ocibuild.graph import GitSource
    from ocibuild.solver.secret_source import SecretSource
    from ocibuild.sources.git import GitAuth, GitRepos, Resolved
    from ocibuild.sources.git_url import GitRef

AUTH_HEADER = "GIT_AUTH_HEADER"
AUTH_TOKEN = "GIT_AUTH_TOKEN"
KEY_VERSION = "ocibuild-git-v1"


class GitSources:
    """The git sources of one solve: repositories kept under the store's root, trees checked
    out in the solve's temporary directory (`tmp()` makes it), credentials from its
    secrets and ssh."""

    def __init__(self, store_root: Path, tmp: Callable[[], Path],
                 secrets: Mapping[str, SecretSource],
                 ssh: Mapping[str, Path]) -> None:
        self._store_root = store_root
        self._tmp = tmp
        self._secrets = secrets
        self._ssh = ssh
        self.resolved: dict[str, Resolved] = {}  # op digest -> its commit
        self._dirs: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._repos: GitRepos | None = None

    @property
    def repos(self) -> GitRepos:
        if self._repos is None:
            from ocibuild.sources.git import GitRepos

            self._repos = GitRepos(self._store_root, self._tmp())
        return self._repos

    def key(self, op: GitSource) -> str:
        """The op's cache key: the commit, the subdirectory and what is kept of .git."""
        resolved = self.repos.resolve(_ref(op), self.auth(op))
        _check_checksum(op, resolved)
        self.resolved[op.digest] = resolved
        what = resolved.commit
        if op.keep_git_dir:  # .git names the ref (and keeps an annotated tag's object)
            what = f"{resolved.tag_object or resolved.commit}.git#{resolved.ref}"
        parts = [KEY_VERSION, what, op.subdir, op.submodules]
        return hex_of_bytes(repr(parts).encode())

    def describe(self, op: GitSource) -> str:
        """The source and its commit, as --explain-cache shows them."""
        resolved = self.resolved[op.digest]
        ref = op.ref or resolved.ref.removeprefix("refs/heads/")
        return f"{redact(op.remote)}#{ref} at {resolved.commit[:12]}"

    def directory(self, op: GitSource) -> Path:
        """The checked-out tree the op names (made once per solve)."""
        with self._lock:
            if op.digest not in self._dirs:
                dest = self._tmp() / f"git-{op.digest.split(':')[1][:16]}"
                self._dirs[op.digest] = self.repos.checkout(
                    _ref(op), self.resolved[op.digest], dest,
                    keep_git_dir=op.keep_git_dir, submodules=op.submodules,
                    auth=self.auth(op))
            return self._dirs[op.digest]

    def auth(self, op: GitSource) -> GitAuth:
        return git_auth(_ref(op), self._secrets, self._ssh)


def git_auth(ref: GitRef, secrets: Mapping[str, SecretSource], ssh: Mapping[str, Path]
             ) -> GitAuth:
    """The credentials the build's --secret and --ssh values give for the remote."""
    from ocibuild.sources.git import GitAuth, token_header

    if ref.scheme == "ssh":
        sock = ssh.get("default")
        if sock is None:
            raise OcibuildError(f"git source {redact(ref.remote)}: no SSH agent forwarded "
                                "for it (use --ssh default)")
        return GitAuth(ssh_socket=str(sock))
    host = urllib.parse.urlsplit(ref.remote).netloc.rpartition("@")[2]
    for name, token in ((f"{AUTH_HEADER}.{host}", False), (f"{AUTH_TOKEN}.{host}", True),
                        (AUTH_HEADER, False), (AUTH_TOKEN, True)):
        source = secrets.get(name)
        data = source.data() if source is not None else None
        if data is not None:
            text = data.decode(errors="replace").strip()
            return GitAuth(header=token_header(text) if token else text)
    return GitAuth()


def _ref(op: GitSource) -> GitRef:
    from ocibuild.sources.git_url import parse

    parsed = parse(op.remote)
    if parsed is None:
        raise OcibuildError(f"{op.remote}: not a git URL")
    from dataclasses import replace

    return replace(parsed, ref=op.ref, subdir=op.subdir)


def _check_checksum(op: GitSource, resolved: Resolved) -> None:
    if op.checksum:
        check_commit(op.remote, op.checksum, resolved)


def check_commit(remote: str, checksum: str, resolved: Resolved) -> None:
    """ADD --checksum on a git source: the commit (or annotated tag) the ref resolves to
    must start with it, as BuildKit 1.x checks."""
    from ocibuild.sources.git import GitError

    if not all(c in "0123456789abcdefABCDEF" for c in checksum):
        raise GitError(f"invalid checksum {checksum} for Git URL, expected hex commit hash")
    want = checksum.lower()
    if resolved.commit.startswith(want) or resolved.tag_object.startswith(want):
        return
    got = resolved.commit + (f" or {resolved.tag_object}" if resolved.tag_object else "")
    raise GitError(f"git source {redact(remote)}: expected checksum to match {checksum}, "
                   f"got {got}")
