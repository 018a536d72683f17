"""What a RUN --mount=type=bind of the build context shows: the context without what
.dockerignore excludes, as COPY sees it (BuildKit only ever receives the filtered
context, so its bind mounts cannot show more).

A read-only mount of a directory where nothing is excluded is that directory itself.
Otherwise the step gets a tree of its own: hard links to the context's files while
the filesystem allows (the mount is read-only: the step cannot write through them),
else copies; a `rw` mount always gets copies, so that its writes never reach the
context.

With `git_modes` (`--context-modes=git`) the tree shows the modes the cache key hashed
(chmod.git_mode's): it is always made, never the context itself, and a file whose own
mode differs is copied, since a hard link shares the mode with the context's file.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from ocibuild.chmod import git_mode
from ocibuild.dockerignore import IgnoreMatcher


def entries(context: Path, top: str, ignore: IgnoreMatcher
            ) -> Iterator[tuple[str, os.DirEntry[str], bool]]:
    """(path relative to the context, entry, ignored) of everything under the directory
    `top` (relative to the context), each directory before its contents. An ignored
    directory's contents are listed only when a `!` pattern may re-include some of
    them; an ignored directory that cannot be read is skipped."""
    base = os.fspath(context)
    stack = [(top, ignore.matches(top))]
    while stack:
        directory, directory_ignored = stack.pop()
        try:
            with os.scandir(f"{base}/{directory}" if directory else base) as listing:
                found = list(listing)
        except OSError:
            if directory_ignored:
                continue
            raise
        prefix = f"{directory}/" if directory else ""
        for entry in found:
            rel = prefix + entry.name
            ignored = ignore.matches(rel)
            yield rel, entry, ignored
            if entry.is_dir(follow_symlinks=False) and (ignore.has_exclusions or not ignored):
                stack.append((rel, ignored))


def any_ignored(context: Path, top: str, ignore: IgnoreMatcher) -> bool:
    """Does .dockerignore exclude `top` (relative to the context) or anything under it?"""
    if not ignore.patterns:
        return False
    if ignore.matches(top):
        return True
    if not os.path.isdir(context / top) or os.path.islink(context / top):
        return False
    return any(ignored for _, _, ignored in entries(context, top, ignore))


def filtered_tree(context: Path, top: str, dest: Path, ignore: IgnoreMatcher, *,
                  link: bool, git_modes: bool = False) -> bool:
    """Make `dest` what `top` (relative to the context, symlinks resolved) holds but
    what `ignore` excludes: hard links when `link` and the filesystem allows, else
    copies; with `git_modes` every entry has chmod.git_mode's mode. False when nothing
    is left (`top` excluded and nothing re-included)."""
    source = context / top
    if not source.is_dir():
        if ignore.matches(top):
            return False
        _Placer(False, git_modes).place(os.fspath(source), os.fspath(dest),
                                        os.lstat(source))
        return True
    tree = _Tree(context, top, dest, _Placer(link, git_modes))
    kept = False
    for rel, entry, ignored in entries(context, top, ignore):
        if not ignored:
            tree.add(rel, entry.stat(follow_symlinks=False))
            kept = True
    tree.finish()
    return kept or not ignore.matches(top)


class _Tree:
    """The copy of a context directory being made; directories get their modes and
    times once their contents are in (a read-only one could not take them before)."""

    def __init__(self, context: Path, top: str, dest: Path, placer: _Placer) -> None:
        self.base = os.fspath(context)
        self.top = top
        self.placer = placer
        os.mkdir(dest, 0o700)
        self.made = {top: os.fspath(dest)}  # context path -> its directory in the tree
        self.dirs = [(os.fspath(dest), os.stat(context / top))]

    def add(self, rel: str, st: os.stat_result) -> None:
        parent, _, name = rel.rpartition("/")
        target = f"{self._directory(parent)}/{name}"
        if stat.S_ISDIR(st.st_mode):
            self._mkdir(rel, target, st)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(f"{self.base}/{rel}"), target)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        else:
            self.placer.place(f"{self.base}/{rel}", target, st)

    def _directory(self, rel: str) -> str:
        """The tree's directory for the context directory `rel`, made (as in the
        context) if it is not there yet: the parent of a file that a `!` pattern
        re-includes inside an excluded directory."""
        made = self.made.get(rel)
        if made is None:
            parent, _, name = rel.rpartition("/")
            made = f"{self._directory(parent)}/{name}"
            self._mkdir(rel, made, os.lstat(f"{self.base}/{rel}"))
        return made

    def _mkdir(self, rel: str, target: str, st: os.stat_result) -> None:
        os.mkdir(target, 0o700)
        self.made[rel] = target
        self.dirs.append((target, st))

    def finish(self) -> None:
        for path, st in reversed(self.dirs):
            os.chmod(path, git_mode(st.st_mode) if self.placer.git_modes
                     else stat.S_IMODE(st.st_mode))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


class _Placer:
    """Puts a context file (not a directory or symlink) at its place in the tree."""

    def __init__(self, link: bool, git_modes: bool = False) -> None:
        self.link = link
        self.git_modes = git_modes

    def place(self, source: str, target: str, st: os.stat_result) -> None:
        mode = git_mode(st.st_mode) if self.git_modes else stat.S_IMODE(st.st_mode)
        if self.link and mode == stat.S_IMODE(st.st_mode):
            try:
                os.link(source, target, follow_symlinks=False)
                return
            except OSError as exc:
                if exc.errno == errno.EXDEV:  # another filesystem: no link will do
                    self.link = False
                elif exc.errno not in (errno.EPERM, errno.EACCES, errno.EMLINK):
                    raise
        if stat.S_ISREG(st.st_mode):
            shutil.copy2(source, target, follow_symlinks=False)
            if mode != stat.S_IMODE(st.st_mode):
                os.chmod(target, mode)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(target, mode)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        # sockets and devices cannot be made without privileges: left out of a copy
