"""Git repositories for git sources: a ref resolved to a commit, the commit fetched into a
bare repository cached in the store, and a tree checked out of it.

    ROOT/git/<sha256 of the remote>/        a bare repository per remote
    ROOT/git/<sha256 of the remote>.lock    held while it is fetched into or read

Resolving costs one `git ls-remote` (none for a commit hash); the objects are fetched
only when a step needs the tree and the commit is not in the cache yet. The remote is
not trusted: git runs with no system or user configuration (a private empty HOME), no
hooks, no prompts, no `file://` submodules, and with time limits. As in BuildKit
(source/git/source.go, util/gitutil/git_cli.go).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ocibuild.errors import OcibuildError
from ocibuild.sources.git_url import GitRef, redact

GIT_DIR = "git"  # under the store root
LS_REMOTE_TIMEOUT_S = 120
FETCH_TIMEOUT_S = 1800
LOCAL_TIMEOUT_S = 600
SSH_COMMAND = "ssh -F /dev/null -o StrictHostKeyChecking=no -o BatchMode=yes"
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
               "http_proxy", "https_proxy", "no_proxy", "all_proxy")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class GitError(OcibuildError):
    """A git source that cannot be resolved, fetched or checked out."""


def is_commit(text: str) -> bool:
    return len(text) in (40, 64) and bool(_HEX.match(text))


@dataclass(frozen=True)
class GitAuth:
    """What a remote is reached with: an HTTP Authorization header value, an SSH agent."""

    header: str = ""
    ssh_socket: str = ""


def token_header(token: str) -> str:
    """The Authorization value BuildKit sends for a GIT_AUTH_TOKEN secret."""
    return "basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


@dataclass(frozen=True)
class Resolved:
    """A ref's commit: `ref` is the full ref name that matched (or the commit itself);
    `commit` is what the tree is checked out from (an annotated tag's commit)."""

    ref: str
    commit: str
    tag_object: str = ""  # an annotated tag's own object id


class GitRepos:
    """The store's git cache. `tmp` is a private directory for the process's scratch
    files (git's empty HOME)."""

    def __init__(self, store_root: Path, tmp: Path) -> None:
        self.base = Path(store_root) / GIT_DIR
        self.tmp = tmp
        self.home = tmp / "git-home"

    # -- running git -----------------------------------------------------------------------
    def _env(self, auth: GitAuth, remote: str = "", *, submodule_files: bool = False
             ) -> dict[str, str]:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
               "XDG_CONFIG_HOME": str(self.home), "GIT_TERMINAL_PROMPT": "0",
               "GIT_SSH_COMMAND": SSH_COMMAND, "LC_ALL": "C"}
        env.update({k: v for k in _PROXY_VARS if (v := os.environ.get(k))})
        if auth.ssh_socket:
            env["SSH_AUTH_SOCK"] = auth.ssh_socket
        config = [
            # a submodule may not name a path on this machine (the checkout's own
            # file:// fetch sets "always" for itself)
            ("protocol.file.allow", "always" if submodule_files else "user"),
            ("protocol.ext.allow", "never"),
            ("core.hooksPath", os.devnull), ("gc.auto", "0"), ("maintenance.auto", "false"),
            ("http.lowSpeedLimit", "1"), ("http.lowSpeedTime", "60"),
            ("core.askPass", "/bin/false"),
        ]
        if auth.header and remote:
            # in the environment, not on the command line other users can read
            config.append((f"http.{_token_scope(remote)}.extraheader",
                           f"Authorization: {auth.header}"))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env

    def _git(self, args: Sequence[str], *, what: str, env: Mapping[str, str],
             cwd: Path | None = None, timeout: float = LOCAL_TIMEOUT_S,
             extra_env: Mapping[str, str] | None = None, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(["git", *args], cwd=cwd or self.home,
                                  env={**env, **(extra_env or {})}, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, errors="replace",
                                  timeout=timeout, umask=0o022)
        except FileNotFoundError:
            raise GitError(f"{what}: git is not installed (git sources need the git "
                           "command)") from None
        except subprocess.TimeoutExpired:
            raise GitError(f"{what}: git {args[0]} did not finish within "
                           f"{int(timeout)} s") from None
        if check and proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            detail = "; ".join(lines[-3:]) or f"git {args[0]} exited {proc.returncode}"
            raise GitError(f"{what}: {detail}")
        return proc

    # -- resolving ---------------------------------------------------------------------------
    def resolve(self, src: GitRef, auth: GitAuth) -> Resolved:
        """The commit `src.ref` names on the remote (a commit hash is taken as is)."""
        what = f"git source {redact(src.remote)}"
        if is_commit(src.ref):
            return Resolved(src.ref, src.ref.lower())
        env = self._env(auth, src.remote)
        ref = src.ref or self._default_branch(src, env, what)
        out = self._git(["ls-remote", "--", src.remote, ref, ref + "^{}"], what=what,
                        env=env, timeout=LS_REMOTE_TIMEOUT_S).stdout
        short = ref.removeprefix("refs/")
        partial, head = "refs/" + short, "refs/heads/" + ref.removeprefix("refs/heads/")
        tag = "refs/tags/" + ref.removeprefix("refs/tags/")
        found: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            found[name] = sha
        # as git checkout: a full ref name, then a branch, then a tag
        for name in (partial, head):
            if name in found:
                return Resolved(name, found[name])
        if tag in found:
            peeled = found.get(tag + "^{}", "")
            if peeled:
                return Resolved(tag, peeled, tag_object=found[tag])
            return Resolved(tag, found[tag])
        raise GitError(f"{what}: the repository has no ref {ref!r}")

    def _default_branch(self, src: GitRef, env: Mapping[str, str], what: str) -> str:
        out = self._git(["ls-remote", "--symref", "--", src.remote, "HEAD"], what=what,
                        env=env, timeout=LS_REMOTE_TIMEOUT_S).stdout
        m = re.search(r"^ref: refs/heads/(\S+)\tHEAD", out, re.MULTILINE)
        if m is None:
            raise GitError(f"{what}: cannot find the repository's default branch")
        return m.group(1)

    # -- fetching --------------------------------------------------------------------------
    def repo_dir(self, remote: str) -> Path:
        return self.base / hashlib.sha256(remote.encode()).hexdigest()[:32]

    @contextlib.contextmanager
    def _locked(self, remote: str) -> Iterator[Path]:
        self.base.mkdir(mode=0o700, parents=True, exist_ok=True)
        repo = self.repo_dir(remote)
        fd = os.open(str(repo) + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield repo
        finally:
            os.close(fd)

    def _has_commit(self, repo: Path, commit: str, env: Mapping[str, str]) -> bool:
        return self._git(["--git-dir", str(repo), "cat-file", "-e", commit + "^{commit}"],
                         what="", env=env, check=False).returncode == 0

    def _fetch(self, repo: Path, src: GitRef, resolved: Resolved, auth: GitAuth) -> None:
        """Bring the commit into the cache repository unless it is there already."""
        what = f"git source {redact(src.remote)}"
        env = self._env(auth, src.remote)
        if not (repo / "HEAD").exists():
            shutil.rmtree(repo, ignore_errors=True)
            self._git(["-c", "init.defaultBranch=master", "init", "--bare", "--quiet",
                       str(repo)], what=what, env=env)
            # the remote submodules' relative URLs are read against
            self._git(["--git-dir", str(repo), "remote", "add", "origin", src.remote],
                      what=what, env=env)
        if self._has_commit(repo, resolved.commit, env):
            return
        git_dir = ["--git-dir", str(repo)]
        if resolved.ref == resolved.commit:  # a commit hash: fetch it, else everything
            done = self._git([*git_dir, "fetch", "--quiet", "--depth=1", "--no-tags", "--",
                              src.remote, resolved.commit], what=what, env=env,
                             timeout=FETCH_TIMEOUT_S, check=False).returncode == 0
            if not done:  # a server that only gives what its refs point to
                deepen = ["--unshallow"] if (repo / "shallow").exists() else []
                self._git([*git_dir, "fetch", "--quiet", "--force", "--tags", *deepen, "--",
                           src.remote, "+refs/heads/*:refs/heads/*"], what=what, env=env,
                          timeout=FETCH_TIMEOUT_S)
        else:
            self._git([*git_dir, "fetch", "--quiet", "--depth=1", "--no-tags", "--force",
                       "--", src.remote, f"+{resolved.ref}:{resolved.ref}"], what=what,
                      env=env, timeout=FETCH_TIMEOUT_S)
        if not self._has_commit(repo, resolved.commit, env):
            # the ref moved since it was resolved: ask for the commit itself
            self._git([*git_dir, "fetch", "--quiet", "--no-tags", "--", src.remote,
                       resolved.commit], what=what, env=env, timeout=FETCH_TIMEOUT_S)
            if not self._has_commit(repo, resolved.commit, env):
                raise GitError(f"{what}: {resolved.ref} no longer points to "
                               f"{resolved.commit} and that commit cannot be fetched")

    # -- checking out ------------------------------------------------------------------------
    def checkout(self, src: GitRef, resolved: Resolved, dest: Path, *, keep_git_dir: bool,
                 submodules: bool, auth: GitAuth) -> Path:
        """Fetch what is missing and check the commit out into the new directory `dest`;
        returns the directory to use (`dest`, or its subdirectory `src.subdir`)."""
        what = f"git source {redact(src.remote)}"
        dest.mkdir(mode=0o755)
        with self._locked(src.remote) as repo:
            self._fetch(repo, src, resolved, auth)
            env = self._env(auth, src.remote)
            if keep_git_dir and not src.subdir:
                self._clone_into(repo, src, resolved, dest, env, what)
                git_dir = dest / ".git"
            else:
                index = {"GIT_INDEX_FILE": str(dest) + ".index"}
                self._git(["--git-dir", str(repo), "--work-tree", str(dest), "checkout",
                           "--no-overlay", "--quiet", resolved.commit, "--", "."],
                          what=what, env=env, extra_env=index)
                git_dir = repo
            if submodules and (dest / ".gitmodules").is_file():
                index = {} if git_dir != repo else {"GIT_INDEX_FILE": str(dest) + ".index"}
                tree = ["--git-dir", str(git_dir), "--work-tree", str(dest), "submodule",
                        "--quiet"]
                # sync: the URLs of this commit's .gitmodules, not an older commit's
                for step in (["init"], ["sync", "--recursive"],
                             ["update", "--init", "--recursive", "--depth=1"]):
                    self._git([*tree, *step], what=what, env=env, cwd=dest, extra_env=index,
                              timeout=FETCH_TIMEOUT_S)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(dest) + ".index")
        if not src.subdir:
            return dest
        return subdir_of(dest, src.subdir, what)

    def _clone_into(self, repo: Path, src: GitRef, resolved: Resolved, dest: Path,
                    env: Mapping[str, str], what: str) -> None:
        """A checkout that keeps .git: a one-commit clone of the cache repository whose
        origin is the remote (without credentials), as BuildKit keeps it."""
        local = self._env(GitAuth(), submodule_files=True)
        git = ["--git-dir", str(dest / ".git"), "--work-tree", str(dest)]
        self._git(["-c", "init.defaultBranch=master", "init", "--quiet", str(dest)],
                  what=what, env=local)
        self._git([*git, "remote", "add", "origin", "file://" + str(repo)], what=what,
                  env=local)
        if resolved.ref == resolved.commit:
            pull = resolved.commit
            local = {**local, "GIT_CONFIG_PARAMETERS": "'uploadpack.allowanysha1inwant'='true'"}
        else:
            pull = f"{resolved.ref}:{resolved.ref}"
        self._git([*git, "fetch", "--quiet", "--update-head-ok", "--depth=1", "--", "origin",
                   pull], what=what, env=local)
        self._git([*git, "checkout", "--quiet", resolved.commit], what=what, env=local)
        self._git([*git, "remote", "set-url", "origin", redact(src.remote)], what=what,
                  env=local)
        self._git([*git, "reflog", "expire", "--all", "--expire=now"], what=what, env=local)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest / ".git" / "FETCH_HEAD")


def subdir_of(dest: Path, subdir: str, what: str) -> Path:
    """`subdir` of the checkout, reached through directories only (never a symlink)."""
    path = dest
    for part in subdir.split("/"):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise GitError(f"{what}: no directory {subdir!r} in the repository") from None
        if not stat.S_ISDIR(mode):
            raise GitError(f"{what}: {subdir!r} is not a directory in the repository")
    return path


def _token_scope(remote: str) -> str:
    """The URLs a token is sent to: the remote (any github.com repository for github.com,
    as BuildKit and actions/checkout do)."""
    for prefix in ("https://github.com/", "https://www.github.com/"):
        if remote.startswith(prefix):
            return prefix
    return remote
