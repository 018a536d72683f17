"""Git URLs as BuildKit reads them in a Dockerfile and as a build context.

    https://host/repo.git#REF:SUBDIR     http(s) only with the .git suffix
    git://host/repo#REF                  ssh://user@host/repo
    user@host:repo.git#REF               scp-like, read as ssh

REF is a branch, a tag or a commit (empty: the remote's HEAD); SUBDIR is a directory of
the repository to use as the root. The query form BuildKit also takes (`?ref=`, `?tag=`,
`?branch=`, `?subdir=`, `?checksum=`, `?keep-git-dir=`) is read the same way.
(BuildKit: util/gitutil/git_url.go, util/sshutil/scpurl.go,
frontend/dockerfile/dfgitutil/git_ref.go.)
"""

from __future__ import annotations

import functools
import posixpath
import re
import urllib.parse

from ocibuild.deferred import deferred_dataclass
from ocibuild.errors import UsageError

SCHEMES = ("http", "https", "ssh", "git")
_FLAGS = ("keep-git-dir", "submodules")


@functools.cache
def _proto() -> re.Pattern[str]:
    return re.compile(r"^[a-zA-Z0-9]+://")


@functools.cache
def _scp() -> re.Pattern[str]:
    return re.compile(r"^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$")


@deferred_dataclass(frozen=True)
class GitRef:
    """A parsed git URL: `remote` is what git is given (no fragment, no query)."""

    remote: str
    scheme: str
    host: str
    ref: str = ""
    subdir: str = ""
    checksum: str = ""
    keep_git_dir: bool | None = None
    submodules: bool = True


def _clean_subdir(text: str) -> str:
    return posixpath.normpath("/" + text).lstrip("/") if text else ""


def parse(text: str) -> GitRef | None:
    """The git reference `text` names, or None when it is not a git URL (a local path,
    an http URL without .git). A git URL with a bad query raises UsageError."""
    if text.startswith(("./", "../")):
        return None
    proto = _proto().match(text)
    if proto:
        scheme = proto.group(0)[:-3].lower()
        if scheme not in SCHEMES:
            return None
        parts = urllib.parse.urlsplit(text)
        if scheme in ("http", "https") and not parts.path.endswith(".git"):
            return None
        remote = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        host, fragment, query = parts.hostname or "", parts.fragment, parts.query
    else:
        m = _scp().match(text)
        if m is None:
            return None
        scheme, host = "ssh", m.group(2)
        remote = f"{m.group(1)}@{host}:{m.group(3)}"
        query, fragment = m.group(4) or "", m.group(5) or ""
    ref, _, subdir = fragment.partition(":")
    found = GitRef(remote=remote, scheme=scheme, host=host, ref=ref,
                   subdir=_clean_subdir(subdir))
    return _with_query(found, query, text) if query else found


def _with_query(found: GitRef, query: str, text: str) -> GitRef:
    values: dict[str, list[str]] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        values.setdefault(key, []).append(value)
    ref, subdir, checksum = found.ref, found.subdir, ""
    keep, submodules = found.keep_git_dir, found.submodules
    tag = branch = ""
    for key, vals in values.items():
        if len(vals) > 1:
            raise UsageError(f"{text}: query {key!r} has multiple values")
        value = vals[0]
        if not value and key not in _FLAGS:
            raise UsageError(f"{text}: query {key!r} has no value")
        if key == "ref":
            if ref and ref != value:
                raise UsageError(f"{text}: ref conflicts: {ref!r} vs {value!r}")
            ref = value
        elif key == "tag":
            tag = value if value.startswith("refs/tags/") else "refs/tags/" + value
        elif key == "branch":
            branch = value if value.startswith("refs/heads/") else "refs/heads/" + value
        elif key == "subdir":
            value = _clean_subdir(value)
            if subdir and subdir != value:
                raise UsageError(f"{text}: subdir conflicts: {subdir!r} vs {value!r}")
            subdir = value
        elif key in ("checksum", "commit"):
            checksum = value
        elif key in _FLAGS:
            flag = _bool(value, key, text)
            keep, submodules = (flag, submodules) if key == "keep-git-dir" else (keep, flag)
        else:
            raise UsageError(f"{text}: unexpected query {key!r}")
    if tag and branch:
        raise UsageError(f"{text}: branch conflicts with tag")
    for named in (tag, branch):
        if named:
            if ref and ref != named:
                raise UsageError(f"{text}: ref conflicts: {ref!r} vs {named!r}")
            ref = named
    return GitRef(remote=found.remote, scheme=found.scheme, host=found.host, ref=ref,
                  subdir=subdir, checksum=checksum, keep_git_dir=keep, submodules=submodules)


def _bool(value: str, key: str, text: str) -> bool:
    if value == "":
        return True
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise UsageError(f"{text}: invalid {key} value: {value!r}")


def redact(remote: str) -> str:
    """The remote without a password or token in it, for messages."""
    parts = urllib.parse.urlsplit(remote)
    if parts.scheme and parts.password is not None:
        netloc = f"{parts.username}:xxxxx@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return remote
