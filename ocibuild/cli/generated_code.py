"""A per-user cache of the code `dataclasses` generates, for the command's start.

Each dataclass gets its `__init__`, `__repr__`, `__eq__` (and so on) as source text that
`dataclasses` compiles as the class is made. A build command makes ~60 of them while
its modules load, and compiling their ~350 functions was a fifth of those imports:
measured on a cold seed build, 11 interleaved runs, ~13 ms of 0.164 s (a cached build
without its memo: ~10 ms of 0.096 s). Python caches the bytecode of modules, not of
code made at run time; this caches that, keyed by the exact text compiled (the same
text always compiles to the same code, so a hit is exact and a changed class a miss).

The cache is one marshal file per Python bytecode version under
$XDG_CACHE_HOME/ocibuild (else ~/.cache/ocibuild), written as Python writes bytecode:
not where `sys.dont_write_bytecode` is set, only into a directory of this user's, and
never in the way (a cache that cannot be read, written or trusted is ignored). It is
read only when it belongs to this user and no one else can write it, since it holds
code this process runs.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType

_MAX_BYTES = 4 << 20  # a larger cache is dropped and started again
_NAME = "dataclass-code"


class _Cache:
    def __init__(self, path: str, entries: dict[str, bytes]) -> None:
        self.path = path
        self.entries = entries  # source text -> marshaled code
        self.used: set[str] = set()
        self.added = False

    def compiled(self, text: str) -> CodeType:
        self.used.add(text)
        data = self.entries.get(text)
        if data is not None:
            try:
                return marshal.loads(data)
            except (ValueError, EOFError, TypeError):
                pass
        # dont_inherit: compiled as dataclasses' own exec() compiles it (that module has
        # no __future__ imports; this one has, and they would change the annotations)
        code = compile(text, "<string>", "exec", dont_inherit=True)
        self.entries[text] = marshal.dumps(code)
        self.added = True
        return code


def install() -> None:
    """Have `dataclasses` take the code it generates from the cache (compiling and
    adding what it lacks), and write the cache back at exit if anything was added."""
    import atexit
    import dataclasses

    path = _cache_path()
    if path is None:
        return
    cache = _Cache(path, _read(path))
    builtin_exec = exec

    def cached_exec(source: object, globals: object = None, locals: object = None) -> None:
        if isinstance(source, str):
            source = cache.compiled(source)
        builtin_exec(source, globals, locals)  # type: ignore[arg-type]

    dataclasses.exec = cached_exec  # type: ignore[attr-defined]
    if not sys.dont_write_bytecode:
        atexit.register(_write_if_added, cache)


def _cache_path() -> str | None:
    from ocibuild.cli.user_cache import cache_path

    tag = sys.implementation.cache_tag
    return None if tag is None else cache_path(f"{_NAME}.{tag}.marshal")


def _header() -> bytes:
    # the interpreter's exact version: its bytecode, which marshal writes, is its own
    return f"ocibuild {_NAME} {sys.implementation.name} {sys.version}\n".encode()


def _read(path: str) -> dict[str, bytes]:
    from ocibuild.cli.user_cache import open_trusted

    fd = open_trusted(path, _MAX_BYTES)
    if fd is None:
        return {}
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except OSError:
        return {}
    header = _header()
    if not data.startswith(header):
        return {}
    try:
        entries = marshal.loads(data[len(header):])
    except (ValueError, EOFError, TypeError):
        return {}
    if not isinstance(entries, dict) or not all(
            type(k) is str and type(v) is bytes for k, v in entries.items()):
        return {}
    return entries


def _write_if_added(cache: _Cache) -> None:
    """(At exit.) Replace the cache file with one holding the new entries too; as a
    whole, so that a reader never sees half of one."""
    if not cache.added:
        return
    # copies: a daemon thread may still be making a class (a copy is taken at once)
    entries, used = dict(cache.entries), set(cache.used)
    data = _header() + marshal.dumps(entries)
    if len(data) > _MAX_BYTES:  # grown with code no longer made: keep what this used
        data = _header() + marshal.dumps({t: entries[t] for t in used if t in entries})
        if len(data) > _MAX_BYTES:
            return
    from ocibuild.cli.user_cache import write

    write(cache.path, data)
