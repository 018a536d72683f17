"""A per-user file with the compiled code of the modules a command imports, so that the
next command takes each from there instead of looking for it along the module search
path.

A build imports ~240 modules before its first step starts. Found the usual way, each
costs a look along its search path, then a stat of the source and an open, a read and a
check of its bytecode file: ~40 µs of import machinery a module, ~10 ms of a command.
Served from one mapped file (the code unmarshalled as a module loads), that part costs
~10 µs a module, and a cold build ends ~5 ms sooner (interleaved runs of both).

The file is one per interpreter, optimization level and module search path
($XDG_CACHE_HOME/ocibuild, else ~/.cache/ocibuild: `module-code.<tag>.<key>`), kept,
read and written as ocibuild.cli.user_cache says (trusted only when it is this user's
and no one else can write it). A module is taken from it only as the usual import would
find it:
- its source file has the size and modification time its code was compiled from (as
  Python checks its bytecode files), else it is imported as usual;
- every directory the search would have looked in is as it was when the file was
  written (a module added to one changes the directory's time): a top-level module
  needs every entry of the search path unchanged, a submodule its package's directory,
  and its package found where it was;
- only source modules of regular packages (and top-level ones) are kept; extension,
  built-in and frozen modules, namespace packages and modules that other import hooks
  made are left to the usual import.
The search path must not depend on the working directory (`python -c`, `python -m`
put it first): the command then does without the file. Whatever changed, the command
writes the file again as it exits, as Python writes bytecode (not under
PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import CodeType, ModuleType

_NAME = "module-code"
_MAGIC = b"ocibuild module-code 2\n"
_MAX_BYTES = 32 << 20  # a larger file is written with this command's modules only
_KEEP_FILES = 4  # module-code files of other search paths kept (the newest)
_TOP = ""  # the search directory of a top-level module: the whole search path

_bootstrap = sys.modules["_frozen_importlib"]
_external = sys.modules["_frozen_importlib_external"]

# name -> (source path, is a package, source mtime_ns, source size, offset, length), the
# offset counted from the end of the header, where the modules' code begins
Entry = tuple[str, bool, int, int, int, int]

_installed: _Finder | None = None


class _Finder:
    """The meta path finder (and loader) serving modules from the file."""

    def __init__(self, key: tuple[object, ...], index: dict[str, Entry],
                 data: memoryview | None) -> None:
        self.key = key
        self.index = index
        self.data = data

    def find_spec(self, name: str, path: object = None, target: object = None
                  ) -> ModuleSpec | None:
        entry = self.index.get(name)
        if entry is None:
            return None
        origin, package, mtime, size, offset, length = entry
        search = _search_dir(name, origin, package)
        if search == _TOP:
            if path is not None:
                return None
        elif type(path) is not list or path != [search]:
            return None  # its package was found elsewhere (or its path was changed)
        try:
            st = os.stat(origin)
        except OSError:
            st = None
        if st is None or st.st_mtime_ns != mtime or st.st_size != size:
            self.index.pop(name, None)
            return None
        spec = _bootstrap.ModuleSpec(name, self, origin=origin, is_package=package,
                                     loader_state=(offset, length))
        spec.has_location = True  # __file__, and __cached__ from it
        if package:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        return spec

    def invalidate_caches(self) -> None:
        pass

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None and spec.origin is not None
        code = self._code(spec)
        if code is None:  # unreadable in the file: as the usual import does it
            _external.SourceFileLoader(spec.name, spec.origin).exec_module(module)
            return
        exec(code, module.__dict__)

    def _code(self, spec: ModuleSpec) -> CodeType | None:
        offset, length = spec.loader_state
        try:
            assert self.data is not None
            code = marshal.loads(self.data[offset:offset + length])
        except (AssertionError, ValueError, EOFError, TypeError):
            return None
        return code if type(code) is type(_search_dir.__code__) else None

    # what runpy, pkgutil and linecache may ask of a module's loader
    def is_package(self, name: str) -> bool:
        return self.index[name][1]

    def get_filename(self, name: str) -> str:
        return self.index[name][0]

    def get_code(self, name: str) -> CodeType | None:
        return _external.SourceFileLoader(name, self.index[name][0]).get_code(name)

    def get_source(self, name: str) -> str | None:
        return _external.SourceFileLoader(name, self.index[name][0]).get_source(name)


def install() -> None:
    """Serve this process's imports from the file where it holds them, and write it
    again at exit when this process imported modules it lacked (nothing where the
    search path depends on the working directory)."""
    global _installed
    if _installed is not None or not _search_path_is_fixed():
        return
    key = _key()
    path = _file_path(key)
    if path is None:
        return
    index, data = _read(path, key)
    _installed = _Finder(key, index, data)
    sys.meta_path.insert(0, _installed)
    if not sys.dont_write_bytecode:
        import atexit

        atexit.register(_write_at_exit, _installed, path)


def _search_path_is_fixed() -> bool:
    try:
        cwd = os.getcwd()
    except OSError:
        return False
    return all(entry and entry != cwd and os.path.isabs(entry) for entry in sys.path)


def _key() -> tuple[object, ...]:
    return (sys.implementation.cache_tag, sys.version, sys.flags.optimize, tuple(sys.path))


def _file_path(key: tuple[object, ...]) -> str | None:
    import _blake2

    from ocibuild.cli.user_cache import cache_path

    tag = sys.implementation.cache_tag
    if tag is None:
        return None
    digest = _blake2.blake2b(marshal.dumps(key), digest_size=8).hexdigest()
    return cache_path(f"{_NAME}.{tag}.{digest}")


def _search_dir(name: str, origin: str, package: bool) -> str:
    """The directory the usual import looked in to find the module: its package's
    (_TOP for a top-level module: each entry of the search path)."""
    if "." not in name:
        return _TOP
    found = os.path.dirname(origin)
    return os.path.dirname(found) if package else found


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _read(path: str, key: tuple[object, ...]) -> tuple[dict[str, Entry], memoryview | None]:
    """The file's entries still valid (and its code, mapped); none when it cannot be
    used."""
    from ocibuild.cli.user_cache import open_trusted

    fd = open_trusted(path, _MAX_BYTES)
    if fd is None:
        return {}, None
    try:
        import mmap

        data = memoryview(mmap.mmap(fd, 0, prot=mmap.PROT_READ))
    except (OSError, ValueError):  # ValueError: an empty file
        return {}, None
    finally:
        os.close(fd)
    try:
        stored_key, dirs, index = _header(data)
    except (ValueError, EOFError, TypeError):
        return {}, None
    data = data[_code_start(data):]
    if stored_key != key or not _valid_index(index, len(data)) or not _valid_dirs(dirs):
        return {}, None
    changed = {d for d, mtime in dirs.items() if _mtime(d) != mtime}
    if any(d in changed for d in sys.path):
        changed.add(_TOP)
    if changed:
        index = {name: entry for name, entry in index.items()
                 if _search_dir(name, entry[0], entry[1]) not in changed}
    return index, data


def _header(data: memoryview) -> tuple[object, dict[str, int], dict[str, Entry]]:
    if data[:len(_MAGIC)] != _MAGIC:
        raise ValueError("not a module-code file")
    start = len(_MAGIC) + 8
    stored_key, dirs, index = marshal.loads(data[start:_code_start(data)])
    return stored_key, dirs, index


def _code_start(data: memoryview) -> int:
    start = len(_MAGIC) + 8
    return start + int.from_bytes(data[len(_MAGIC):start], "little")


def _valid_index(index: object, size: int) -> bool:
    if type(index) is not dict:
        return False
    for name, entry in index.items():
        if type(name) is not str or type(entry) is not tuple or len(entry) != 6:
            return False
        origin, package, mtime, length_of_source, offset, length = entry
        if type(origin) is not str or type(package) is not bool \
                or not all(type(n) is int for n in (mtime, length_of_source, offset, length)) \
                or offset < 0 or length < 0 or offset + length > size:
            return False
    return True


def _valid_dirs(dirs: object) -> bool:
    return type(dirs) is dict and all(type(d) is str and type(m) is int
                                      for d, m in dirs.items())


def _write_at_exit(finder: _Finder, path: str) -> None:
    """(At exit.) Write the file again when this process imported source modules it
    lacks, or some of its entries went stale."""
    added = _new_entries(finder)
    if not added:
        return
    codes: dict[str, tuple[tuple[str, bool, int, int], bytes]] = {}
    if finder.data is not None:
        for name, (origin, package, mtime, size, offset, length) in finder.index.items():
            code = bytes(finder.data[offset:offset + length])
            codes[name] = ((origin, package, mtime, size), code)
    codes.update(added)
    data = _encode(finder.key, codes)
    if len(data) > _MAX_BYTES:  # grown with modules no longer imported
        data = _encode(finder.key, {name: codes[name] for name in codes if name in sys.modules})
        if len(data) > _MAX_BYTES:
            return
    from ocibuild.cli.user_cache import write

    if write(path, data):
        _remove_old_files(path)


def _new_entries(finder: _Finder) -> dict[str, tuple[tuple[str, bool, int, int], bytes]]:
    """The source modules this process imported the usual way that the file can serve:
    name -> ((source path, is a package, mtime_ns, size), marshalled code)."""
    added = {}
    for name, module in list(sys.modules.items()):
        if name in finder.index or name == "__main__":
            continue
        spec = getattr(module, "__spec__", None)
        if spec is None or spec.name != name \
                or type(spec.loader) is not _external.SourceFileLoader \
                or not spec.has_location or not (spec.origin or "").endswith(".py"):
            continue
        origin, package = spec.origin, spec.submodule_search_locations is not None
        if not _found_where_served(name, origin, package):
            continue
        try:
            before = os.stat(origin)
            code = spec.loader.get_code(name)
            after = os.stat(origin)
        except (OSError, ImportError, SyntaxError, ValueError):
            continue
        if code is None or (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns,
                                                                     after.st_size):
            continue
        added[name] = ((origin, package, after.st_mtime_ns, after.st_size),
                       marshal.dumps(code))
    return added


def _found_where_served(name: str, origin: str, package: bool) -> bool:
    """Whether the finder, asked as the usual import asks, would give this module: a
    top-level one from an entry of the search path, a submodule from the one directory
    of a regular package."""
    search = _search_dir(name, origin, package)
    if search == _TOP:
        return os.path.dirname(os.path.dirname(origin) if package else origin) in sys.path
    parent = sys.modules.get(name.rpartition(".")[0])
    return getattr(parent, "__path__", None) == [search] \
        and type(parent.__path__) is list  # type: ignore[union-attr]


def _encode(key: tuple[object, ...],
            codes: dict[str, tuple[tuple[str, bool, int, int], bytes]]) -> bytes:
    index: dict[str, Entry] = {}
    offset = 0
    for name, (meta, code) in codes.items():
        index[name] = (*meta, offset, len(code))
        offset += len(code)
    dirs = {d: _mtime(d) for d in sys.path}
    dirs.update((d, _mtime(d)) for d in {_search_dir(n, e[0], e[1]) for n, e in index.items()}
                if d != _TOP)
    header = marshal.dumps((key, dirs, index))
    return b"".join([_MAGIC, len(header).to_bytes(8, "little"), header,
                     *(code for _, code in codes.values())])


def _remove_old_files(kept: str) -> None:
    """Keep the _KEEP_FILES newest module-code files of this interpreter (one per search
    path: a checkout moved or removed leaves one behind)."""
    directory, name = os.path.split(kept)
    prefix = name.rsplit(".", 1)[0] + "."
    try:
        files = [e for e in os.scandir(directory)
                 if e.name.startswith(prefix) and e.is_file(follow_symlinks=False)]
        files.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns, reverse=True)
        for entry in files[_KEEP_FILES:]:
            os.unlink(entry.path)
    except OSError:
        pass
