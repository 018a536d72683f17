"""COPY/ADD and WORKDIR's mkdir, requests answered under the sandbox's id mapping
(idspace.userns.request_isolated).

The step's root (and a stage used as a COPY source) is a RootFS: either a plain
directory (native snapshotter) or an overlay that this process mounts in a mount
namespace of its own.
Ownership is set as seen inside the sandbox: files from a context become root's (or
--chown's), files from a stage keep their owners. Modes are the source's, or with
`git_modes` (`--context-modes=git`) chmod.git_mode's, the same the cache key hashed;
--chmod applies to those.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibuild.chmod import ModeChange, git_mode
from ocibuild.chmod import parse as parse_chmod
from ocibuild.errors import OcibuildError
from ocibuild.idspace.requests import Request, RootFS, handler, request_type
from ocibuild.solver import selection

if TYPE_CHECKING:  # the builder imports this module for its requests, not for copies
    from ocibuild.snapshot import copy_links

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class CopyError(OcibuildError):
    pass


def _in_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return True


@request_type
class CopyInto(Request[None]):
    """COPY/ADD of `sources` (patterns) from `source` to `dest` in the step's `root`."""

    stateless = True  # its mounts are gone when it returns
    root: RootFS
    source: RootFS
    sources: tuple[str, ...]
    dest: str
    cwd: str
    chown: str
    chmod: str
    excludes: tuple[str, ...]
    parents: bool
    add: bool
    from_context: bool  # the source is the context (or a URL, here-documents, git)
    ignore: tuple[str, ...] = ()  # the context's .dockerignore patterns
    git_modes: bool = False  # modes as git knows them (a local context, --context-modes=git)
    # the store's root, where a copy of a context directory straight into the upper
    # directory finds the last one to link unchanged files from (copy_links); "": none
    links: str = ""


@request_type
class MkdirIn(Request[None]):
    """WORKDIR: directory `path` in `root`, owned as the stage's `user` says."""

    stateless = True
    root: RootFS
    path: str
    mode: int
    user: str


@request_type
class SeedCache(Request[None]):
    """A new cache mount directory `dest`, a copy of directory `path` of `source`."""

    stateless = True
    source: RootFS
    path: str
    dest: str


@contextlib.contextmanager
def _mounted(spec: RootFS, readonly: bool = False) -> Iterator[Path]:
    """A root filesystem as a directory: itself, or an overlay mounted for the block."""
    if spec.upper is None:
        from ocibuild.snapshot.overlay import distinct_lowers

        layers = distinct_lowers([Path(p) for p in spec.lowers])
        if len(layers) == 1:
            yield layers[0]
            return
    else:
        layers = [Path(p) for p in spec.lowers]
    import tempfile

    from ocibuild.sandbox import linux

    target = tempfile.mkdtemp(prefix="ocibuild-copy-")
    lower = ":".join(str(p) for p in reversed(layers))  # overlayfs: top layer first
    userxattr = _in_user_namespace()
    if spec.upper is not None and not readonly:
        assert spec.work is not None
        linux.mount_step_overlay(target, 0, lower, spec.upper, spec.work, userxattr)
    else:
        options = f"lowerdir={lower}" if spec.upper is None \
            else f"lowerdir={spec.upper}:{lower}"
        if userxattr:
            options += ",userxattr"
        linux.mount("overlay", target, "overlay", linux.MS_RDONLY if readonly else 0, options)
    try:
        yield Path(target)
    finally:
        linux.umount(target)
        os.rmdir(target)


def _private_mount_namespace() -> None:
    from ocibuild.sandbox import linux

    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | (1 << 18))  # MS_PRIVATE


def _read_etc(root: Path, name: str) -> str:
    """/etc/NAME of the root ("" when it cannot be read)."""
    try:
        return (root / selection.scoped_resolve(root, f"etc/{name}")).read_text(
            errors="replace")
    except OSError:
        return ""


def _owner(spec: str, root: Path) -> tuple[int, int] | None:
    if not spec:
        return None
    from ocibuild.sandbox.users import UnknownUserError, resolve_user

    def read(name: str) -> str:
        path = root / selection.scoped_resolve(root, f"etc/{name}")
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    user_part, _, group_part = spec.partition(":")
    if user_part.isdigit() and (not group_part or group_part.isdigit()):
        return int(user_part), int(group_part) if group_part else int(user_part)
    try:
        u = resolve_user(spec, read("passwd"), read("group"))
    except UnknownUserError as exc:
        raise CopyError(str(exc)) from None
    return u.uid, u.gid


def _dest_path(root: Path, path: str) -> Path:
    """`path` (absolute in the image) on disk, parents resolved inside the root."""
    parent, name = posixpath.split(path.rstrip("/") or "/")
    if not name:
        return root
    return root / selection.scoped_resolve(root, parent) / name


def _makedirs(root: Path, path: str, owner: tuple[int, int] | None, mode: int = 0o755) -> Path:
    current = root
    rel = ""
    for part in [p for p in path.split("/") if p]:
        rel = f"{rel}/{part}"
        target = root / selection.scoped_resolve(root, rel)
        if not os.path.lexists(target):
            os.mkdir(target, mode)
            os.chmod(target, mode)
            os.lchown(target, *(owner or (0, 0)))
        elif not target.is_dir():
            raise CopyError(f"cannot create directory {rel}: a file is in the way")
        current = target
    return current


class _Copier:
    """Copies entries with their modes and times; owners are `owner`, else the source's.

    Paths are plain strings and file attributes are set through the open descriptor:
    a context of 20,000 small files is 20,000 rounds of this, so every syscall and
    every Path object per file shows. A file is created with its final permission bits
    and its new owner and mode are read back (fstat) instead of set: the chown and chmod
    run only where they differ (another owner, set-id bits, a umask or default ACL that
    took bits away). Under a directory this copy has just made nothing can be in the
    way, so the destination is not looked up first; the data is sent until the size the
    walk saw, without a last call to find the end. A tree's files are copied on a few
    threads (copy_threads), its directories by the walk. Given the last copy of the same
    tree (copy_links), the walk links a file unchanged since from there instead."""

    def __init__(self, src_root: Path, owner: tuple[int, int] | None,
                 chmod: ModeChange | None, from_context: bool, git_modes: bool = False) -> None:
        self.src_root = src_root
        self.owner = owner if owner is not None else ((0, 0) if from_context else None)
        self.chmod = chmod
        self.git_modes = git_modes
        self._last: copy_links.LastCopy | None = None
        self._last_dirs: set[str] = set()  # destinations whose parts are directories there
        self._last_top = 0  # length of the destination's top, with its slash

    def _mode(self, st: os.stat_result) -> int:
        """The permission bits the copy of an entry with source lstat `st` gets."""
        mode = git_mode(st.st_mode) if self.git_modes else stat.S_IMODE(st.st_mode)
        if self.chmod is not None:
            mode = self.chmod.apply(stat.S_IFMT(st.st_mode) | mode, stat.S_ISDIR(st.st_mode))
        return mode

    def _apply(self, dst: str | Path | int, st: os.stat_result, is_link: bool) -> None:
        """Owner, then mode (a chown clears set-id bits), then times; `dst` may be an
        open descriptor."""
        uid, gid = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
        if isinstance(dst, int):
            os.fchown(dst, uid, gid)
        else:
            os.lchown(dst, uid, gid)
        if not is_link:
            os.chmod(dst, self._mode(st))
        if isinstance(dst, int):
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def _copy_xattrs(self, src: str, dst: str | int) -> None:
        """Every extended attribute, as BuildKit's file op copies them: one that cannot
        be read or set here (trusted.*, a capability of another namespace's root, a
        filesystem without them) is skipped, as its error handler only logs; overlayfs'
        own are never copied."""
        try:
            names = os.listxattr(src, follow_symlinks=False)
        except OSError:
            return
        for name in names:
            if ".overlay." in name or name.startswith("user.ocibuild."):
                continue  # overlayfs' own, or the store's mark on a layer directory
            with contextlib.suppress(OSError):
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False))

    def copy_entry(self, src: str | Path, dst: str | Path, st: os.stat_result,
                   fresh_parent: bool = False) -> bool:
        """`src` (lstat `st`) as `dst`, replacing what is there; `fresh_parent`: the
        directory `dst` goes into was made by this copy and holds nothing by that name.
        True when `dst` is a directory made now (empty but for what the copy puts in)."""
        src, dst = os.fspath(src), os.fspath(dst)
        existing: int | None = None
        if not fresh_parent:
            try:
                existing = os.lstat(dst).st_mode
            except FileNotFoundError:
                pass
        if stat.S_ISDIR(st.st_mode):
            if existing is not None and not stat.S_ISDIR(existing):
                os.unlink(dst)  # a file or a symbolic link (to anything) is replaced
                existing = None
            if existing is None:
                os.mkdir(dst, 0o700)
            self._apply(dst, st, False)
            self._copy_xattrs(src, dst)
            return existing is None
        if existing is not None:
            if stat.S_ISDIR(existing):
                import shutil

                shutil.rmtree(dst)
            else:
                os.unlink(dst)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
            self._apply(dst, st, True)
        elif stat.S_ISREG(st.st_mode):
            self._copy_file(src, dst, st)
        else:
            raise CopyError(f"cannot copy special file {posixpath.basename(src)}")
        return False

    def _linked(self, dst: str, st: os.stat_result) -> bool:
        """Whether the file is the last copy's, unchanged, linked as `dst`."""
        if self._last is None or dst.rpartition("/")[0] not in self._last_dirs:
            return False
        from ocibuild.snapshot import copy_links

        owner = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
        return copy_links.link_unchanged(self._last, dst[self._last_top:], dst, st,
                                         self._mode(st), owner)

    def _copy_file(self, src: str, dst: str, st: os.stat_result) -> None:
        mode = self._mode(st)
        fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            # set-id bits only by chmod, after the chown and the data, which clear them
            fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                           mode & 0o777)
            try:
                if st.st_size:
                    _copy_data(fin, fout, st.st_size)
                made = os.fstat(fout)
                uid, gid = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
                chowned = made.st_uid != uid or made.st_gid != gid
                if chowned:
                    os.fchown(fout, uid, gid)
                if chowned or stat.S_IMODE(made.st_mode) != mode:
                    os.fchmod(fout, mode)
                os.utime(fout, ns=(st.st_atime_ns, st.st_mtime_ns))  # no write follows
                self._copy_xattrs(src, fout)  # after the chown, which drops capabilities
            finally:
                os.close(fout)
        finally:
            os.close(fin)

    def copy_tree(self, rel: str, dst: Path, excluded: selection.Excluded | None,
                  last: copy_links.LastCopy | None = None) -> None:
        """`rel` in the source (a directory): its contents into `dst`; `last`: the last
        copy of the same directory, to link unchanged files from."""
        top = os.fspath(dst)
        self._last, self._last_top = last, len(top) + 1
        self._last_dirs = {top} if last is not None else set()
        try:
            self._copy_tree(rel, top, excluded)
        finally:
            self._last, self._last_dirs = None, set()

    def _copy_tree(self, base: str, top: str, excluded: selection.Excluded | None) -> None:
        from ocibuild.snapshot import copy_links
        from ocibuild.solver.copy_threads import FileCopies

        src_root = os.fspath(self.src_root)
        last = self._last
        dirs: list[tuple[str, os.stat_result]] = []
        present: set[str] = set()  # directories known to exist in the destination
        fresh: set[str] = set()  # the ones this copy made (empty but for what it put there)
        with FileCopies(self.copy_entry) as files:
            for child, st in selection.walk(self.src_root, base, excluded):
                sub = child[len(base):].lstrip("/") if base else child
                if not sub:
                    if not os.path.lexists(top):
                        os.mkdir(top, 0o700)
                        self._apply(top, st, False)
                        dirs.append((top, st))
                        fresh.add(top)
                    continue
                target = f"{top}/{sub}"
                parent = target.rpartition("/")[0]
                if parent not in present:
                    if not os.path.exists(parent):  # under an excluded directory
                        os.makedirs(parent, mode=0o755)
                    present.add(parent)
                if not stat.S_ISDIR(st.st_mode):
                    # a link is two short syscalls: made here, it does not wait for a
                    # copying thread to take the interpreter's lock
                    if last is None or not stat.S_ISREG(st.st_mode) \
                            or not self._linked(target, st):
                        files.add(f"{src_root}/{child}", target, st, parent in fresh)
                    continue
                # here, before any file under it is handed to a copying thread
                if self.copy_entry(f"{src_root}/{child}", target, st, parent in fresh):
                    fresh.add(target)
                if last is not None and parent in self._last_dirs \
                        and copy_links.is_directory(last, target[self._last_top:]):
                    self._last_dirs.add(target)
                dirs.append((target, st))
                present.add(target)
            files.finish()
        for path, st in reversed(dirs):  # directory mtimes after their contents
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_data(fin: int, fout: int, size: int) -> None:
    """The first `size` bytes of `fin` (fewer if it is shorter) into `fout`, in the
    kernel (sendfile), else through a buffer."""
    block = min(max(size, 1 << 23), 1 << 30)
    offset = 0
    try:
        while offset < size and (sent := os.sendfile(fout, fin, offset, block)):
            offset += sent
        return
    except OSError:
        if offset:
            raise  # a failure midway is a real one (no space, ...)
    left = size - offset
    while left > 0 and (chunk := os.read(fin, min(left, 1 << 20))):
        left -= len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fout, view):]


def _is_archive(path: Path) -> bool:
    import tarfile  # here: the builder imports this module for its request types only

    if not path.name.endswith(ARCHIVE_SUFFIXES) and not path.is_file():
        return False
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _extract(archive: Path, dest: Path, owner: tuple[int, int] | None) -> None:
    """ADD of a local archive: its members under `dest`, owners as the archive says (or
    --chown), never writing outside `dest`: symlinks on the way to a member are
    followed inside `dest` as chroot would (one climbing out of it is refused); an
    existing entry is replaced, not written through."""
    from ocibuild.errors import OcibuildError
    from ocibuild.oci.extract import extract_archive

    with open(archive, "rb") as f:
        try:
            extract_archive(f, dest, owner=owner)
        except OcibuildError as exc:
            raise CopyError(f"{archive.name}: {exc.message}") from None


def _needs_mount(spec: RootFS) -> bool:
    return not spec.is_directory


@handler(CopyInto)
def copy_into(args: CopyInto) -> None:
    """(Runs under the sandbox mapping, in a forked child or the resident.) COPY/ADD into the
    step's root."""
    top = single_file_layer(args)
    if _needs_mount(args.root) or (top is None and _needs_mount(args.source)):
        _private_mount_namespace()
    with _mounted(args.source, readonly=True) if top is None \
            else contextlib.nullcontext(top) as src:
        with _mounted(args.root) as root:
            rest = _copy(root, src, args)
        if rest is not None:
            rest()  # the overlay is unmounted: its upper directory may be written


def single_file_layer(args: CopyInto) -> Path | None:
    """The top layer of a stage's stack where a COPY --from of one file can take it
    without mounting the stack (~1 ms of mount and unmount on the critical path of a
    multi-stage build): each directory on the file's path is a directory of the top
    layer and the file a regular file there. The mounted overlay shows exactly that
    file then, whatever the layers below hold: it looks each name up in the top layer
    first, merges a lower layer only into a directory, and shows what the top layer
    holds otherwise. None where the stack is mounted (a pattern, a link or a whiteout
    on the way, a path the top layer does not hold)."""
    spec = args.source
    if spec.upper is not None or args.from_context or args.parents or len(args.sources) != 1:
        return None
    from ocibuild.snapshot.overlay import distinct_lowers

    layers = distinct_lowers([Path(p) for p in spec.lowers])
    (pattern,) = args.sources
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    if len(layers) < 2 or not parts or ".." in parts or selection.has_wildcards(pattern):
        return None
    path = os.fspath(layers[-1])
    for i, part in enumerate(parts):
        path = f"{path}/{part}"
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if not (stat.S_ISREG(mode) if i == len(parts) - 1 else stat.S_ISDIR(mode)):
            return None
    return layers[-1]


def _upper_dir(spec: RootFS, root: Path, target: Path, source: str | None = None,
               excluded: selection.Excluded | None = None, prefix: str = "") -> Path | None:
    """Where a copy into the directory `target` of the mounted overlay `root` may go
    straight into the overlay's upper directory instead, once it is unmounted. It is
    about a fifth of a 20,000-file copy's time (bigctx on a fresh ext4: 1.06-1.27 s into
    a directory, 1.37-1.64 s through an overlay), and lets a copy of the context link
    the files unchanged since its last copy (copy_links). None where it cannot.

    When `target` holds nothing (made by this copy, or an empty WORKDIR), nothing of a
    lower layer can be in the way or be merged with. When it holds something (`COPY . .`
    into a WORKDIR that an earlier step filled), `source` is the directory copied (its
    path in the source's mount, `prefix` its path as `excluded` sees it): each of its
    directories that is a directory in `target` too is copied up first, and what the
    copy then writes into the upper directory merges with the lower layers as it would
    have through the mount: a file or a directory of the upper directory hides a lower
    entry of the same name that is not a directory, and a directory is merged with a
    lower directory. None then without `source`."""
    if spec.upper is None or target.is_symlink() or not target.is_dir():
        return None
    rel = os.path.relpath(target, root)
    if rel == "." or rel.startswith("../"):
        return None
    with os.scandir(target) as entries:
        holds = any(True for _ in entries)
    if holds and source is None:
        return None
    upper = Path(spec.upper) / rel
    if not upper.is_dir():  # a directory of a lower layer: copied up first
        _copy_up(os.fspath(target))
    if upper.is_symlink() or not upper.is_dir():
        return None
    if holds:
        assert source is not None
        _copy_up_shared_dirs(source, os.fspath(target), excluded, prefix)
    return upper


def _copy_up(path: str) -> None:
    """Copy a directory of the mounted overlay up into its upper directory: setting its
    own times changes nothing but makes overlayfs copy it up (owner, mode, xattrs)."""
    st = os.lstat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_up_shared_dirs(source: str, merged: str, excluded: selection.Excluded | None,
                         prefix: str) -> None:
    """Copy up each directory below `merged` (in the mounted overlay) where `source` has
    a directory that the copy does not exclude. Only real directories are descended:
    a symbolic link in `merged` is hidden by the copy's entry, never followed."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(f"{source}/{rel}" if rel else source) as entries:
                names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue  # the copy reports what it cannot read
        for name in names:
            sub = f"{rel}/{name}" if rel else name
            if excluded is not None and excluded(f"{prefix}/{sub}" if prefix else sub, True):
                continue
            path = f"{merged}/{sub}"
            try:
                is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
            except OSError:
                continue
            if is_dir:
                _copy_up(path)
                stack.append(sub)


def _copy(root: Path, src: Path, args: CopyInto) -> Callable[[], None] | None:
    """The copy into the mounted `root`; or what is left of it to do once `root` is
    unmounted (_upper_dir)."""
    from ocibuild.dockerignore import IgnoreMatcher

    ignore = IgnoreMatcher(list(args.ignore))
    exclude = IgnoreMatcher(list(args.excludes))
    owner = _owner(args.chown, root)
    chmod = parse_chmod(args.chmod) if args.chmod else None
    from_context = args.from_context
    copier = _Copier(src, owner, chmod, from_context, args.git_modes)
    dest = args.dest
    dest_abs = posixpath.normpath(posixpath.join(args.cwd or "/", dest))
    dir_form = dest.endswith("/") or dest in (".", "./") or dest.endswith("/.")
    ignored = (lambda rel, is_dir: ignore.matches(rel)) if ignore.patterns else None
    if args.parents:
        _copy_parents(root, src, args, copier, dest_abs, owner, ignored, exclude)
        return None
    matches: list[str] = []
    for pattern in args.sources:
        found = selection.expand(src, pattern.lstrip("/") if not from_context else pattern)
        found = [m for m in found
                 if selection.visible(src, m, ignored, reincludes=ignore.has_exclusions)]
        if not found and not selection.has_wildcards(pattern):
            raise CopyError(f"{pattern}: not found"
                            + (" in the build context" if from_context else ""))
        matches += found  # a wildcard matching nothing copies nothing, as BuildKit's
    multiple = len(matches) > 1 or any(selection.has_wildcards(p) for p in args.sources)

    def excluded_under(top: str) -> selection.Excluded:
        def check(rel: str, is_dir: bool) -> bool:
            sub = rel[len(top):].lstrip("/") if top else rel
            return ignore.matches(rel) or exclude.matches(rel) or bool(
                sub and exclude.matches(sub))
        return check

    dest_exists_dir = _dest_path(root, dest_abs).is_dir()
    for match in matches:
        resolved = selection.scoped_resolve(src, match)
        full = src / resolved
        if not os.path.lexists(full):  # a symlink to nothing inside the root
            shown = match if from_context else "/" + match
            raise CopyError(f"{shown}: not found")
        st = os.lstat(full)
        if exclude.matches(match) and not stat.S_ISDIR(st.st_mode):
            continue
        if stat.S_ISDIR(st.st_mode):
            target = _makedirs(root, dest_abs, owner)
            excluded = excluded_under(resolved)
            upper = None
            if len(matches) == 1:
                # with a `!` pattern, directories the copy excludes may still be made for
                # what it re-includes: only into a directory that holds nothing then
                merges = not ignore.has_exclusions and not exclude.has_exclusions
                upper = _upper_dir(args.root, root, target,
                                   os.fspath(full) if merges else None, excluded, resolved)
            if upper is not None:
                return lambda: _copy_into_upper(copier, args, resolved, upper, excluded)
            copier.copy_tree(resolved, target, excluded)
            continue
        if args.add and from_context and _is_archive(full):
            target = _makedirs(root, dest_abs, owner)
            _extract(full, target, owner)
            continue
        name = posixpath.basename(match)
        if dir_form or multiple or dest_exists_dir:
            target_path = posixpath.join(dest_abs, name)
        else:
            target_path = dest_abs
        parent = _makedirs(root, posixpath.dirname(target_path), owner)
        copier.copy_entry(full, parent / posixpath.basename(target_path), st)
    return None


def _copy_into_upper(copier: _Copier, args: CopyInto, resolved: str, dest: Path,
                     excluded: selection.Excluded) -> None:
    """The copy of directory `resolved` of the source into `dest` in the (unmounted)
    overlay's upper directory; of the context, linking what it can from the last copy
    of the same directory, and recorded as the last copy."""
    if not args.links or not args.source.is_directory or args.root.upper is None:
        copier.copy_tree(resolved, dest, excluded)
        return
    from ocibuild.snapshot import copy_links

    store_root, source_dir = Path(args.links), args.source.lowers[0]
    started = time.time_ns()
    last = copy_links.find(store_root, source_dir, resolved)
    try:
        copier.copy_tree(resolved, dest, excluded, last)
    finally:
        if last is not None:
            last.close()
    copy_links.remember(store_root, source_dir, resolved, Path(args.root.upper), dest,
                        started)


def _copy_parents(root: Path, src: Path, args: CopyInto, copier: _Copier,
                  dest_abs: str, owner: tuple[int, int] | None,
                  ignored: selection.Excluded | None, exclude: Any) -> None:
    """COPY --parents: each source's entries at their path below its pivot (see
    selection.parents_entries), the directories leading to them made as in the source."""
    from_context = args.from_context
    top = _makedirs(root, dest_abs, owner)

    excluded_below = exclude.matches if exclude.patterns else None
    dirs: list[tuple[str, os.stat_result]] = []
    for pattern in args.sources:
        entries = selection.parents_entries(src, pattern, ignored, excluded_below)
        if not entries and not selection.has_wildcards(pattern):
            raise CopyError(f"{pattern}: not found"
                            + (" in the build context" if from_context else ""))
        for kept, path, st in entries:
            target = os.path.join(top, kept)
            copier.copy_entry(os.path.join(src, path), target, st)
            if stat.S_ISDIR(st.st_mode):
                dirs.append((target, st))
    for path, st in reversed(dirs):  # directory mtimes after their contents
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


@handler(SeedCache)
def seed_cache(args: SeedCache) -> None:
    """(Runs under the sandbox mapping, in a forked child or the resident.) A new cache mount
    directory as a copy of a stage's directory, owners and modes kept."""
    if _needs_mount(args.source):
        _private_mount_namespace()
    with _mounted(args.source, readonly=True) as src:
        resolved = selection.scoped_resolve(src, args.path)
        if not os.path.isdir(src / resolved):
            what = "is not a directory" if os.path.lexists(src / resolved) else "not found"
            raise CopyError(f"cache mount source /{args.path}: {what}")
        _Copier(src, None, None, False).copy_tree(resolved, Path(args.dest), None)


@handler(MkdirIn)
def mkdir_in(args: MkdirIn) -> None:
    """(Runs under the sandbox mapping, in a forked child or the resident.) WORKDIR: create the
    directory if missing, owned as BuildKit's file ops read the stage USER."""
    from ocibuild.solver.file_user import file_owner

    if _needs_mount(args.root):
        _private_mount_namespace()
    with _mounted(args.root) as root:
        owner = file_owner(args.user, lambda name: _read_etc(root, name))
        _makedirs(root, args.path, owner, args.mode)
