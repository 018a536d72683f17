"""Apply a layer onto a directory without ever writing outside it.

Every path is resolved here, one component at a time, from a file descriptor of the
root with O_NOFOLLOW. A symlink met on the way (planted by an earlier entry, an earlier
layer or anyone else) is followed as if the root were `/` (chroot): its target is read
and walked again from the root (absolute) or from where the link is (relative), and
`..` never climbs above the root: a layer's stops there (containerd's fs.RootPath), an
archive's is refused (BuildKit's ADD). The final component is never followed: an
existing entry is removed and the new one created with O_EXCL (an archive's directory
entry merges into the directory a symlink of that name leads to, as BuildKit's ADD
does). Absolute names are read as relative to the root; names whose ".." would leave
it are refused before anything is touched. Whiteouts (`.wh.NAME`) and opaque markers
(`.wh..wh..opq`) remove what lower layers left, never what this layer wrote.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ocibuild.errors import OcibuildError, UnsafeLayerError
from ocibuild.idmap import IdMap
from ocibuild.oci.compression import open_uncompressed
from ocibuild.oci.lowerview import LowerView
from ocibuild.oci.tarreader import HashingSource, Member, TarReader

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_AUFS_META_PREFIX = ".wh..wh."

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_IGNORED_XATTR_ERRORS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES)
_MAX_LINKS = 40  # symlinks followed for one path, as the kernel's ELOOP limit

# What a layer's whiteouts and opaque markers hide, resolved inside the root:
# ("whiteout", path of the hidden entry) or ("opaque", path of the directory); and
# ("implied", path) for a directory made because the layer lacks it.
Marks = list[tuple[str, tuple[str, ...]]]


def apply_layer(src: BinaryIO, root: Path, *, id_map: IdMap | None = None,
                chown: bool | None = None, marks: Marks | None = None,
                below: Sequence[Path] = ()) -> str:
    """Extract a gzip, zstd or plain tar layer onto `root`; returns its diffID. `marks`
    receives what the layer's whiteouts hide that the layer does not write itself, and
    ("implied", path) for each directory made because the layer lacks it. `below`: the
    overlay lower directories under this layer (bottom first), when `root` is to be one
    too: a directory the layer lacks follows what they have there (lowerview.py)."""
    root.mkdir(parents=True, exist_ok=True)
    source = HashingSource(open_uncompressed(src))
    reader = TarReader(source)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    extractor = _Extractor(root_fd, id_map, os.geteuid() == 0 if chown is None else chown,
                           below=LowerView(below) if below else None)
    try:
        for member in reader:
            extractor.apply(member, reader)
        source.drain()
        extractor.finish()
        if marks is not None:
            marks += extractor.marks()
    finally:
        extractor.close()
        os.close(root_fd)
    return source.digest


def extract_archive(src: BinaryIO, root: Path, *, owner: tuple[int, int] | None = None,
                    chown: bool = True) -> None:
    """A tar archive (plain, gzip, zstd, bzip2 or xz), as ADD and `build -` unpack one:
    its members under `root`, as safely as apply_layer, except that `.wh.` names are
    ordinary files and a symlink's `..` that would climb out of `root` is refused.
    Owners are the archive's (numeric), or `owner` (--chown) for every member; an owner
    the mapping cannot hold leaves the entry as created (as tar does for an unprivileged
    user)."""
    from ocibuild.oci.compression import open_archive

    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    extractor = _Extractor(root_fd, None, chown, archive=True, owner=owner)
    try:
        source = HashingSource(open_archive(src)[0])
        reader = TarReader(source)
        for member in reader:
            extractor.apply(member, reader)
        extractor.finish()
    finally:
        extractor.close()
        os.close(root_fd)


def archive_parts(name: str, what: str = "layer entry") -> list[str]:
    """The components of an archive path relative to the root (a leading `/` dropped,
    `..` taken lexically), refusing one whose `..` would leave the root."""
    parts: list[str] = []
    for part in name.split("/"):
        if part == "..":
            if not parts:
                raise UnsafeLayerError(
                    f"{what} {name!r}: '..' would leave the root, refusing it")
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return parts


class _Extractor:
    def __init__(self, root_fd: int, id_map: IdMap | None, chown: bool, *,
                 archive: bool = False, owner: tuple[int, int] | None = None,
                 below: LowerView | None = None) -> None:
        """`archive`: an ADD archive, not a layer (no whiteouts; owners best effort)."""
        self._root_fd = root_fd
        self._below = below
        self._id_map = id_map if id_map is not None and not id_map.is_identity else None
        self._chown = chown
        self._archive = archive
        self._owner = owner  # replaces every entry's ids
        self._what = "archive member" if archive else "layer entry"
        self._written: set[str] = set()  # entries of this layer and their parents
        self._dirs: list[tuple[list[str], int, int]] = []  # modes/mtimes set at the end
        self._marks: Marks = []
        self._link = ""  # the last symlink followed, for messages
        # The parent of the last entry stays open: consecutive entries share it.
        self._cached: tuple[tuple[str, ...], int, list[str]] | None = None

    # -- entry points -------------------------------------------------------------------

    def apply(self, member: Member, reader: TarReader) -> None:
        parts = archive_parts(member.name, self._what)
        if not parts:
            return  # the root itself ("./"): keep the target's own metadata
        try:
            if not self._archive and parts[-1].startswith(WHITEOUT_PREFIX):
                self._whiteout(parts, member.name)
                return
            parent, where = self._parent(parts, member.name, create=True)
            assert parent is not None
            if self._archive and member.typeflag == b"5" and _is_link(parent, parts[-1]):
                fd, target = self._walk(parts, member.name, create=True)
                self._close_walk(fd)  # the directory the link leads to, inside the root
                if not target:
                    return
                parent, where = self._parent(target, member.name, create=True)
                assert parent is not None
                parts = target
            self._create(parent, [*where, parts[-1]], member, reader)
        except OSError as exc:
            raise OcibuildError(
                f"{self._what} {member.name!r}: {exc.strerror or exc} while extracting") from exc
        key = ""
        for part in [*where, parts[-1]]:
            key = f"{key}/{part}" if key else part
            self._written.add(key)

    def finish(self) -> None:
        # Children first, so setting a child's mtime cannot disturb its parent's; the
        # last entry for a directory is the one that counts.
        done: set[tuple[str, ...]] = set()
        for parts, mode, mtime_ns in reversed(self._dirs):
            if tuple(parts) in done:
                continue
            done.add(tuple(parts))
            try:
                pfd, _ = self._walk(parts[:-1], "/".join(parts), create=False)
            except (OcibuildError, OSError):
                continue
            if pfd is None:
                continue
            try:
                fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=pfd)
            except OSError:
                continue  # replaced by a later entry of the layer
            finally:
                self._close_walk(pfd)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)

    def marks(self) -> Marks:
        """What the whiteouts hide, except entries the layer writes itself."""
        return [(kind, path) for kind, path in self._marks
                if kind != "whiteout" or "/".join(path) not in self._written]

    def close(self) -> None:
        self._drop_cache()
        if self._below is not None:
            self._below.close()

    # -- entries ------------------------------------------------------------------------

    def _create(self, pfd: int, parts: list[str], m: Member, reader: TarReader) -> None:
        name = parts[-1]
        t = m.typeflag
        if t == b"5":
            if not self._clear(pfd, name, keep_dir=True):
                os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
            try:
                self._own(fd, m)
                self._set_xattrs(fd, m)
            finally:
                os.close(fd)
            self._dirs.append((parts, m.mode, m.mtime_ns))
        elif m.is_regular:
            self._clear(pfd, name, keep_dir=False)
            self._write_file(pfd, name, m, reader)
        elif t == b"1":
            self._hardlink(pfd, parts, m)
        elif t == b"2":
            self._clear(pfd, name, keep_dir=False)
            os.symlink(m.linkname, name, dir_fd=pfd)
            self._own_name(pfd, name, m)
            os.utime(name, ns=(m.mtime_ns, m.mtime_ns), dir_fd=pfd, follow_symlinks=False)
        elif t in (b"3", b"4", b"6"):
            self._clear(pfd, name, keep_dir=False)
            try:
                if t == b"6":
                    os.mkfifo(name, 0o600, dir_fd=pfd)
                else:
                    kind = stat.S_IFCHR if t == b"3" else stat.S_IFBLK
                    os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            except PermissionError:
                return  # device nodes need privileges a rootless build lacks; skip them
            self._own_name(pfd, name, m)
            os.chmod(name, m.mode, dir_fd=pfd)  # just created by us: not a symlink
            os.utime(name, ns=(m.mtime_ns, m.mtime_ns), dir_fd=pfd, follow_symlinks=False)
        else:
            kind = t.decode(errors="replace")
            raise OcibuildError(f"{self._what} {m.name!r}: unsupported tar entry type {kind!r}")

    def _write_file(self, pfd: int, name: str, m: Member, reader: TarReader) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            while chunk := reader.read():
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            self._own(fd, m)
            os.fchmod(fd, m.mode)
            self._set_xattrs(fd, m)
            os.utime(fd, ns=(m.mtime_ns, m.mtime_ns))
        except BaseException:
            os.close(fd)
            os.unlink(name, dir_fd=pfd)
            raise
        os.close(fd)

    def _hardlink(self, pfd: int, parts: list[str], m: Member) -> None:
        target = archive_parts(m.linkname, f"{self._what} {m.name!r}: hard link to")
        if not target:
            raise UnsafeLayerError(f"{self._what} {m.name!r}: hard link to the root directory")
        tfd, where = self._walk(target[:-1], f"{m.name} -> {m.linkname}", create=False)
        if [*where, target[-1]] == parts:
            self._close_walk(tfd)
            return
        if tfd is None:
            raise OcibuildError(
                f"{self._what} {m.name!r}: hard link target {m.linkname!r} does not exist")
        try:
            try:
                st = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise OcibuildError(f"{self._what} {m.name!r}: hard link target "
                                    f"{m.linkname!r} does not exist") from None
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeLayerError(
                    f"{self._what} {m.name!r}: hard link to a directory {m.linkname!r}")
            self._clear(pfd, parts[-1], keep_dir=False)
            os.link(target[-1], parts[-1], src_dir_fd=tfd, dst_dir_fd=pfd,
                    follow_symlinks=False)
        finally:
            if tfd != self._root_fd:
                os.close(tfd)

    def _whiteout(self, parts: list[str], entry: str) -> None:
        base = parts[-1]
        if base != OPAQUE_MARKER and base.startswith(_AUFS_META_PREFIX):
            return  # AUFS bookkeeping (.wh..wh.plnk and the like): nothing to apply
        victim = base[len(WHITEOUT_PREFIX):]
        if base != OPAQUE_MARKER and victim in ("", ".", ".."):
            raise UnsafeLayerError(f"{self._what} {entry!r}: whiteout of {victim!r}, refusing it")
        pfd, where = self._parent(parts, entry, create=False)
        if base == OPAQUE_MARKER:
            self._marks.append(("opaque", tuple(where)))
        else:
            self._marks.append(("whiteout", (*where, victim)))
        if pfd is None:
            return  # nothing below a missing directory to hide
        prefix = "/".join(where)
        prefix = prefix + "/" if prefix else ""
        if base == OPAQUE_MARKER:
            for child in os.listdir(pfd):
                if prefix + child not in self._written:
                    self._clear(pfd, child, keep_dir=False)
            return
        if prefix + victim not in self._written:
            self._clear(pfd, victim, keep_dir=False)

    # -- paths --------------------------------------------------------------------------

    def _parent(self, parts: list[str], entry: str, *,
                create: bool) -> tuple[int | None, list[str]]:
        """The directory holding `parts` (open; None if missing and not `create`) and
        the path it resolved to."""
        key = tuple(parts[:-1])
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1], self._cached[2]
        fd, where = self._walk(parts[:-1], entry, create=create)
        if fd is None:
            return None, where
        self._drop_cache()
        self._cached = (key, fd, where)
        return fd, where

    def _drop_cache(self) -> None:
        if self._cached is not None and self._cached[1] != self._root_fd:
            os.close(self._cached[1])
        self._cached = None

    def _walk(self, comps: list[str], entry: str, *,
              create: bool) -> tuple[int | None, list[str]]:
        """An fd of the directory root/comps and the path it resolved to, symlinks on
        the way followed inside the root (see the module docstring); every directory is
        opened with O_NOFOLLOW from its parent's fd, so the walk cannot leave the root.
        (None, path it would have) when a directory is missing and not `create`."""
        opened: list[int] = []  # fds of the directories of `where`, the root excluded
        where: list[str] = []
        pending = comps[::-1]  # a stack: the next component last
        links = 0
        try:
            while pending:
                comp = pending.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":  # only from a link's target: names are taken lexically
                    if where:
                        where.pop()
                        os.close(opened.pop())
                    elif self._archive:
                        raise UnsafeLayerError(f"{self._what} {entry!r}: symlink "
                                               f"{self._link!r} points outside the root")
                    continue
                cur = opened[-1] if opened else self._root_fd
                here = "/".join([*where, comp])
                try:
                    nxt = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                    target = None
                except FileNotFoundError:
                    if not create:
                        return None, _lexical([*where, comp, *pending[::-1]])
                    target = self._implied_dir(cur, [*where, comp], entry)
                    if target is None:
                        nxt = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    if not _is_link(cur, comp):
                        raise OcibuildError(
                            f"{self._what} {entry!r}: {here!r} is not a directory") from None
                    target = os.readlink(comp, dir_fd=cur)
                if target is not None:
                    links += 1
                    if links > _MAX_LINKS:
                        raise UnsafeLayerError(f"{self._what} {entry!r}: too many levels of "
                                               f"symbolic links at {here!r}") from None
                    self._link = here
                    if target.startswith("/"):
                        while opened:
                            os.close(opened.pop())
                        where.clear()
                    pending.extend(reversed(target.split("/")))
                    continue
                opened.append(nxt)
                where.append(comp)
            return (opened.pop() if opened else self._root_fd), where
        finally:
            for fd in opened:
                os.close(fd)

    def _implied_dir(self, pfd: int, path: list[str], entry: str) -> str | None:
        """A directory the layer lacks: the target of the lower layers' symlink there
        (nothing is made), else the directory is made (like the lower layers' one)."""
        self._marks.append(("implied", tuple(path)))
        seen = self._below.entry(path) if self._below is not None else None
        if seen is not None and isinstance(seen[1], str):
            return seen[1]
        if seen is None:
            self._mkdir(pfd, path[-1], entry)
            return None
        st = seen[1]
        assert isinstance(st, os.stat_result)
        os.mkdir(path[-1], 0o700, dir_fd=pfd)
        if self._chown:  # the lower directory's ids are already the ones on disk
            os.chown(path[-1], st.st_uid, st.st_gid, dir_fd=pfd, follow_symlinks=False)
        self._dirs.append((path, stat.S_IMODE(st.st_mode), st.st_mtime_ns))
        return None

    def _mkdir(self, pfd: int, name: str, entry: str) -> None:
        os.mkdir(name, 0o755, dir_fd=pfd)
        if self._chown:
            uid, gid = self._owner or self._host_ids(0, 0, entry)
            try:
                os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            except OSError as exc:
                self._unowned(exc)

    def _close_walk(self, fd: int | None) -> None:
        if fd is not None and fd != self._root_fd:
            os.close(fd)

    def _clear(self, pfd: int, name: str, *, keep_dir: bool) -> bool:
        """Remove whatever is at name (never following it); True if a directory was kept."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        return False

    # -- metadata -----------------------------------------------------------------------

    def _host_ids(self, uid: int, gid: int, entry: str) -> tuple[int, int]:
        if self._id_map is None:
            return uid, gid
        host_uid = self._id_map.uid_to_host(uid)
        host_gid = self._id_map.gid_to_host(gid)
        if host_uid is None or host_gid is None:
            raise OcibuildError(
                f"{self._what} {entry!r}: owner {uid}:{gid} is outside the id mapping")
        return host_uid, host_gid

    def _own(self, fd: int, m: Member) -> None:
        if self._chown:
            try:
                os.fchown(fd, *self._ids_of(m))
            except OSError as exc:
                self._unowned(exc)

    def _own_name(self, pfd: int, name: str, m: Member) -> None:
        if self._chown:
            try:
                os.chown(name, *self._ids_of(m), dir_fd=pfd, follow_symlinks=False)
            except OSError as exc:
                self._unowned(exc)

    def _ids_of(self, m: Member) -> tuple[int, int]:
        return self._owner or self._host_ids(m.uid, m.gid, m.name)

    def _unowned(self, exc: OSError) -> None:
        """A chown failed. For an archive (not a layer) an id the user namespace does not
        map (a single id mapping) leaves the entry owned by whoever made it."""
        if not self._archive or exc.errno not in (errno.EINVAL, errno.EPERM):
            raise exc

    def _set_xattrs(self, fd: int, m: Member) -> None:
        for key, value in m.xattrs.items():
            if ".overlay." in key:
                continue  # overlayfs would read these from our snapshots: never extract them
            try:
                os.setxattr(fd, key, value)
            except OSError as exc:
                if exc.errno not in _IGNORED_XATTR_ERRORS:
                    raise


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _lexical(parts: list[str]) -> list[str]:
    """`parts` with "." and ".." taken lexically (never above the root)."""
    out: list[str] = []
    for part in parts:
        if part == "..":
            if out:
                out.pop()
        elif part not in ("", "."):
            out.append(part)
    return out
