"""Which files a COPY/ADD source names in a directory tree.

Sources may hold Go `filepath.Match` wildcards per path segment (`*` `?` `[a-z]`). Paths
are resolved inside the tree: symlinks on the way are followed but can never lead out of
it (an absolute target or `..` stays under the tree's root), as BuildKit scopes them.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MAX_SYMLINKS = 40
Excluded = Callable[[str, bool], bool]  # (relative path, is_dir) -> skip it


def has_wildcards(text: str) -> bool:
    return any(c in text for c in "*?[")


@functools.lru_cache(maxsize=512)
def segment_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match for one path segment, as a regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("^", "]") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                neg = body.startswith("^")
                if neg:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                out.append(f"[{'^' if neg else ''}{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def scoped_resolve(root: Path, rel: str, *, follow_last: bool = True) -> str:
    """`rel` resolved inside `root` (symlinks followed, never out of root); relative."""
    parts = [p for p in rel.split("/")][::-1]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if (parts or follow_last) and candidate.is_symlink():
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(f"too many levels of symbolic links in {rel}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts.extend(reversed(target.split("/")))
            continue
        resolved.append(part)
    return "/".join(resolved)


def expand(root: Path, pattern: str) -> list[str]:
    """The relative paths under `root` that `pattern` names (sorted); [] if none."""
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    if not segments:
        return [""]
    found = [""]
    for seg in segments:
        nxt: list[str] = []
        for base in found:
            base_resolved = scoped_resolve(root, base) if base else ""
            if seg == ".." or not has_wildcards(seg):
                cand = f"{base}/{seg}" if base else seg
                path = root / scoped_resolve(root, cand, follow_last=False)
                if os.path.lexists(path):
                    nxt.append(cand)
                continue
            try:
                names = sorted(os.listdir(root / base_resolved))
            except (NotADirectoryError, FileNotFoundError):
                continue
            rx = segment_regex(seg)
            nxt += [f"{base}/{n}" if base else n for n in names if rx.match(n)]
        found = nxt
        if not found:
            return []
    return sorted(found)


def walk(root: Path, rel: str, excluded: Excluded | None = None
         ) -> Iterator[tuple[str, os.stat_result]]:
    """`rel` (already resolved) and, for a directory, everything under it, depth-first in
    sorted order, as (relative path, lstat). Excluded directories are still descended
    into (an exception pattern may re-include something inside), but not reported; one
    that cannot be read is skipped. A directory that is not excluded and cannot be read
    raises its OSError (the copy would silently lack its content)."""
    # plain strings, not Path objects: this runs once per file of the context
    base = os.fspath(root)
    st = os.lstat(f"{base}/{rel}" if rel else base)
    if not (excluded and rel and excluded(rel, stat.S_ISDIR(st.st_mode))):
        yield rel, st
    if not stat.S_ISDIR(st.st_mode):
        return
    is_dir_mode = stat.S_ISDIR
    lstat = os.stat
    stack = [rel]
    while stack:
        d = stack.pop()
        # each directory through a descriptor of its own: an entry's lstat resolves one
        # name, not the whole path (a fifth less system time on a 20k-file context),
        # and a directory swapped for a link after it was listed is not followed
        try:
            fd = os.open(f"{base}/{d}" if d else base,
                         _BELOW if d != rel else _DIRECTORY)
        except OSError:
            if d and excluded and excluded(d, True):
                continue
            raise
        try:
            names = sorted(os.listdir(fd))
            prefix = f"{d}/" if d else ""
            subdirs: list[str] = []
            for name in names:
                child = prefix + name
                cst = lstat(name, dir_fd=fd, follow_symlinks=False)
                is_dir = is_dir_mode(cst.st_mode)
                if not (excluded and excluded(child, is_dir)):
                    yield child, cst
                if is_dir:
                    subdirs.append(child)
        finally:
            os.close(fd)
        stack.extend(reversed(subdirs))


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_BELOW = _DIRECTORY | os.O_NOFOLLOW


def visible(root: Path, rel: str, excluded: Excluded | None, *,
            reincludes: bool = True) -> bool:
    """Is `rel` (a match, not yet resolved) in the tree as BuildKit receives a context?
    An excluded file is absent, and so is an excluded directory unless an exception
    pattern (only if `reincludes`) keeps something below it (fsutil's walker then sends
    the directory too)."""
    if excluded is None or not rel or not excluded(rel, False):
        return True
    resolved = scoped_resolve(root, rel)
    if not reincludes or not os.path.isdir(root / resolved):
        return False
    return any(True for _ in walk(root, resolved, excluded))


def split_parents(source: str) -> tuple[str, str]:
    """COPY --parents: (the directory copied from, the pattern of the paths kept below
    it). The source is cut at its first `/./` (the pivot); without one the copy is from
    the root and the whole source is the pattern."""
    base, pivot, pattern = source.partition("/./")
    if not pivot:
        base, pattern = "", source
    from ocibuild.dockerignore import go_clean

    return go_clean("/" + base).lstrip("/"), go_clean("/" + pattern).lstrip("/")


def parents_entries(root: Path, source: str, excluded: Excluded | None = None,
                    excluded_below: Callable[[str], bool] | None = None,
                    ) -> list[tuple[str, str, os.stat_result]]:
    """What COPY --parents copies for `source`: (path kept below the pivot, path in the
    tree, lstat) for every entry the pattern includes (a directory it names brings its
    contents, `**` spans directories) and, before them, the directories leading to
    them; in walk order. Empty when nothing matches. `excluded` sees paths in the tree
    (.dockerignore), `excluded_below` the kept paths (--exclude)."""
    from ocibuild.dockerignore import IgnoreMatcher

    base_pattern, pattern = split_parents(source)
    segments = [s for s in pattern.split("/") if s]
    literal: list[str] = []
    for seg in segments:
        if has_wildcards(seg):
            break
        literal.append(seg)
    matcher = IgnoreMatcher([pattern]) if len(literal) < len(segments) else None
    bases = expand(root, base_pattern) if has_wildcards(base_pattern) else [base_pattern]
    out: list[tuple[str, str, os.stat_result]] = []
    for base_rel in bases:
        base = scoped_resolve(root, base_rel)
        if os.path.isdir(root / base):
            out += _parents_below(root, base, literal, matcher, excluded, excluded_below)
    return out


def _parents_below(root: Path, base: str, literal: list[str], matcher: Any,
                   excluded: Excluded | None, excluded_below: Callable[[str], bool] | None,
                   ) -> list[tuple[str, str, os.stat_result]]:
    start_kept = "/".join(literal)
    start = scoped_resolve(root, "/".join(filter(None, [base, start_kept])))
    if not os.path.lexists(root / start if start else root):
        return []
    # directories on the way to what is kept: copied only if something below them is
    pending: dict[str, tuple[str, os.stat_result]] = {}
    for i in range(1, len(literal)):
        kept = "/".join(literal[:i])
        path = scoped_resolve(root, f"{base}/{kept}" if base else kept)
        pending[kept] = (path, os.lstat(root / path))
    out: list[tuple[str, str, os.stat_result]] = []
    emitted: set[str] = set()
    for path, st in walk(root, start, excluded):
        suffix = path[len(start):].lstrip("/") if start else path
        kept = "/".join(filter(None, [start_kept, suffix]))
        if not kept:
            continue  # the pivot directory itself is the destination
        if (matcher is not None and not matcher.matches(kept)) \
                or (excluded_below is not None and excluded_below(kept)):
            if stat.S_ISDIR(st.st_mode):
                pending[kept] = (path, st)
            continue
        parts = kept.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in emitted and parent in pending:
                out.append((parent, *pending[parent]))
                emitted.add(parent)
        out.append((kept, path, st))
        emitted.add(kept)
    return out
