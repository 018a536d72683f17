"""The rebuild memo: a fully cached `ocibuild build` answered before the engine loads.

A build whose every step came from the cache leaves a memo in the store, named by its
command line: the state of its inputs (every entry of the context by lstat, the
Dockerfile, the store's image names, the cache records it used and the keys it looked
up and missed) and what it printed. The same command finds the memo, checks that
those inputs are unchanged, and prints the same again. That is sound because a cached
rebuild is deterministic: the image's times come from the records it uses, so equal
inputs give the same image, which the store already holds under the same names.

A `--push` build's memo also holds the names it pushed (registry, repository, tag and
digest of each, parsed when the memo is written: the question makes no Reference).
Before it answers, it asks each name's registry what the name holds now, with the
requests the engine's own push of an image already there makes (the ping, a push token
where the registry wants one, one HEAD per name), and answers only when every name
still holds that image: a CI job's cached `build --push` costs those requests and a
walk of its context, not the engine's start. The registries are asked (memo_push.py)
while the context is walked, and the store is checked meanwhile too.

Anything the memo cannot vouch for goes the normal way: an option it does not know
(other outputs, secrets, signing, remote caches, --no-cache, ...), a changed file, a
moved tag here or in a registry, a replaced or pruned record, a missing blob, a
registry that cannot be asked. The memo only saves start-up: a no-op rebuild then costs
about the interpreter's own start.

Import-light on purpose (os, marshal, struct, sqlite3, fcntl, blake2b): `ocibuild.cli.main`
calls it before click and the engine are imported. The memo is a cache, so it is kept
in marshal's format: another Python version cannot read it and builds the normal way.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import stat
import sys
from struct import error as StructError
from struct import pack

from ocibuild import __version__, memo_push, store_paths
from ocibuild.forked_call import ForkedCall, single_threaded

try:  # hashlib's own blake2b: importing hashlib loads OpenSSL, ~2.5 ms of every answer
    from _blake2 import blake2b
except ImportError:  # pragma: no cover (an interpreter without the module)
    from hashlib import blake2b

TYPE_CHECKING = False  # typing, json (and re) would double this module's cost
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Mapping, Sequence

VERSION = 5
_DIGEST_SIZE = 32  # bytes: every digest the memo keeps or names files by


def _new_hash(data: bytes = b"") -> blake2b:
    return blake2b(data, digest_size=_DIGEST_SIZE)

# `ocibuild build` options whose whole effect is on the image (their values are part
# of the memo's name); any other option means no memo. --network is in the steps' cache
# keys; --allow only lets a build run (one refused never leaves a memo)
VALUE_OPTIONS = frozenset({"-t", "--tag", "-f", "--file", "--target", "--build-arg",
                           "--label", "--progress", "--platform", "-j", "--jobs",
                           "--snapshotter", "--allow", "--network", "--isolation",
                           "--add-host", "--shm-size", "--ulimit", "--annotation",
                           "--context-modes"})
# how registries are reached: what a --push build's memo asks them with
REGISTRY_OPTIONS = frozenset({"--insecure-registry", "--registry-ca", "--authfile",
                              "--registry-timeout"})
VALUE_OPTIONS |= REGISTRY_OPTIONS
FLAG_OPTIONS = frozenset({"-q", "--quiet"})
# besides those a bare --build-arg/--label KEY reads; BUILDKIT_PROGRESS: what auto shows
ENV_NAMES = ("SOURCE_DATE_EPOCH", "BUILDKIT_PROGRESS")


class Invocation:
    """A `build` command line the memo understands, and the state of its inputs."""

    __slots__ = ("root", "name", "inputs", "index", "push", "registry", "question", "memo",
                 "store_unchanged")

    def __init__(self, root: str, name: str, inputs: str, push: bool = False,
                 registry: Sequence[tuple[str, str]] = (),
                 question: memo_push.Question | None = None, memo: dict | None = None,
                 store_unchanged: bool | None = None) -> None:
        self.root = root  # the store root
        self.name = name  # hex digest of the command line, cwd, uid and environment
        self.inputs = inputs  # hex digest of the context and Dockerfile state
        self.index = index_digest(root)  # the store's image names when the build began
        self.push = push  # --push: the memo holds what it pushed, and asks the registries
        self.registry = tuple(registry)  # (option, value) of the registry flags
        self.question = question  # the registries being asked already (memo_push)
        self.memo = memo  # this command's memo as read (None: none of this version)
        self.store_unchanged = store_unchanged  # the store checked already (None: not yet)

    def registries_hold(self, pushed: list[list[str]]) -> bool:
        if self.question is not None:
            return self.question.answer(pushed)
        return memo_push.registries_hold(self.registry, pushed)

    def drop_question(self) -> None:
        if self.question is not None:
            self.question.drop()

    @property
    def path(self) -> str:
        return memo_path(self.root, self.name)


def parse(argv: Sequence[str], env: Mapping[str, str] | None = None,
          cwd: str | None = None) -> Invocation | None:
    """The invocation `ocibuild ARGV` is, if it is a build the memo may answer."""
    env = os.environ if env is None else env
    command = store_paths.build_command(argv)
    if command is None:
        return None
    root, i = command
    values: list[tuple[str, str]] = []
    context: str | None = None
    quiet = push = False
    rest = argv[i + 1:]
    j = 0
    while j < len(rest):
        arg = rest[j]
        if arg.startswith("--") and "=" in arg:
            option, _, value = arg.partition("=")
            if option not in VALUE_OPTIONS:
                return None
            values.append((option, value))
            j += 1
        elif arg in VALUE_OPTIONS and j + 1 < len(rest):
            values.append((arg, rest[j + 1]))
            j += 2
        elif arg in FLAG_OPTIONS:
            quiet, j = True, j + 1
        elif arg == "--push":
            push, j = True, j + 1
        elif arg.startswith("-") or context is not None:
            return None
        else:
            context, j = arg, j + 1
    dockerfiles = [v for o, v in values if o in ("-f", "--file")]
    display = _display(values, quiet, env)
    if context is None or context == "-" or "-" in dockerfiles or display is None:
        return None
    cwd = os.getcwd() if cwd is None else cwd
    root = os.path.join(cwd, root or store_paths.default_root())
    context = os.path.join(cwd, context)
    read_env = {k: env.get(k) for k in ENV_NAMES}
    for option, value in values:
        if option in ("--build-arg", "--label") and "=" not in value:
            read_env[value] = env.get(value)
    # another ocibuild version may build differently: its builds make their own memos
    name = _digest([VERSION, __version__, os.getuid(), cwd, root, list(argv), read_env,
                    display])
    registry = tuple((o, v) for o, v in values if o in REGISTRY_OPTIONS)
    memo = _read_memo(memo_path(root, name))
    question = None
    if push and memo is not None and single_threaded():  # asked while the context is walked
        question = memo_push.Question.ask(memo, registry)
    checked: list[bool] = []
    tree = tree_signature(context, None if memo is None else
                          lambda: checked.append(_check_store(root, memo)))
    # -f names a file beside the current directory or in the context, with an ignore
    # file beside it: the state of every candidate, present or not
    try:
        extra = [_lstat_line(os.path.join(base, f) + suffix) for f in dockerfiles
                 for base in (cwd, context) for suffix in ("", ".dockerignore")]
    except OSError:
        tree = None
    if tree is None:
        if question is not None:
            question.drop()
        return None
    return Invocation(root, name, _digest([tree, extra]), push, registry, question, memo,
                      checked[0] if checked else None)


def _display(values: list[tuple[str, str]], quiet: bool,
             env: Mapping[str, str]) -> str | None:
    """What the build's progress looks like, as ocibuild.progress.modes reads it:
    "plain" (plain text or nothing), "tty" (the live display, whose last frame a memo
    prints again), or None for JSON lines (whose times are the build's own: no memo)."""
    modes = [value for option, value in values if option == "--progress"]
    mode = modes[-1] if modes else "auto"
    if mode == "auto":
        mode = env.get("BUILDKIT_PROGRESS") or "auto"
    if quiet or mode in ("plain", "quiet"):
        return "plain"
    if mode == "tty" or (mode == "auto" and os.isatty(2)):
        return "tty"
    return "plain" if mode == "auto" else None


def tree_signature(top: str, meanwhile: Callable[[], object] | None = None) -> str | None:
    """A digest of every entry under `top` (path, type, mode, size, inode, mtime and
    ctime): any write, rename, chmod or new file changes it. None: unreadable. No size
    cap: the engine walks a context of any size anyway, and a capped walk would make the
    cached build of a larger one pay for both walks.

    Entries are taken in the order the directory lists them: an entry added, removed or
    renamed changes its directory's own mtime and ctime, which its parent's part holds,
    so only an unchanged tree listed in another order (a miss, never a wrong answer)
    depends on it. Each directory is listed through a descriptor of its own, so that an
    entry's lstat resolves one name, not the whole path (a quarter less system time).
    A tree of more than _SPLIT_AT directories is walked by two processes (_walk_shared);
    `meanwhile` is then called here once the second walker has started (this process
    takes its first part after it), and not at all otherwise."""
    h = _new_hash()
    try:
        h.update(_lstat_line(top).encode(errors="surrogateescape"))
        pending = [(top, "")]
        while pending and len(pending) < _SPLIT_AT:
            h.update(_directory_part(*pending.pop(), pending))
        if len(pending) < _SPLIT_AT or not single_threaded():
            _walk(pending, h)
        else:
            pending.sort()
            h.update(_walk_shared(pending, meanwhile))
    except OSError:
        return None
    return h.hexdigest()


_SPLIT_AT = 16  # directories still to walk when the walk is shared by two processes
_PARTS = 256  # at most: what the shared walk cuts those directories into
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _directory_part(directory: str, below: str,
                    subdirectories: list[tuple[str, str]]) -> bytes:
    """`directory`'s entries as it lists them: their count, its path below the top, their
    names, then five numbers per entry (mode, size, inode, mtime and ctime in ns) packed
    as 64-bit integers (formatted as text where one does not fit); its
    subdirectories (path, path below the top) appended to `subdirectories`. The walk's
    cost is the kernel's lstat of each entry: this is kept to what Python must add to it
    (one lstat call an entry; the numbers packed in one call, a third of the cost of
    formatting them)."""
    numbers: list[int] = []
    add = numbers.extend
    lstat = os.lstat
    # the top may be a symbolic link to the context (the engine follows it too); a
    # directory below it that turned into one since it was listed is not followed
    fd = os.open(directory, _DIRECTORY if below else _DIRECTORY & ~os.O_NOFOLLOW)
    try:
        names = os.listdir(fd)
        for name in names:
            st = lstat(name, dir_fd=fd)
            mode = st.st_mode
            add((mode, st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
            if mode & _S_IFMT == _S_IFDIR:
                subdirectories.append((f"{directory}/{name}", f"{below}{name}/"))
    finally:
        os.close(fd)
    try:  # struct, not array: array's import loads collections (~1.5 ms before the fork)
        packed = b"q" + pack(f"{len(numbers)}q", *numbers)
    except StructError:  # an inode number above 2**63, say
        packed = b"s" + str(numbers).encode()
    # NUL ends each name (no name holds one), the count says where the names end
    names.append("")
    text = f"{len(names) - 1}\0{below}\0" + "\0".join(names)
    return text.encode(errors="surrogateescape") + packed


_S_IFMT, _S_IFDIR = 0o170000, stat.S_IFDIR  # the file type's bits, a directory's


def _walk(directories: list[tuple[str, str]], h: blake2b) -> None:
    while directories:
        h.update(_directory_part(*directories.pop(), directories))


def _walk_shared(directories: list[tuple[str, str]],
                 meanwhile: Callable[[], object] | None = None) -> bytes:
    """Walk `directories` (and what is below) in this process and a forked child, each
    taking the next part from a queue (a pipe of one-byte part numbers) when it is done
    with one: a walker whose core is shared (with the registry question of a --push
    build, say) walks fewer parts instead of holding the other up. A part's digest does
    not depend on who walked it; the digests are returned in part order."""
    count = min(len(directories), _PARTS)
    bounds = [len(directories) * k // count for k in range(count + 1)]
    queue, write_end = os.pipe()
    try:
        os.write(write_end, bytes(range(count)))  # all of it: no walker waits for more
    finally:
        os.close(write_end)

    def walk_parts() -> bytes:
        done = []
        while taken := os.read(queue, 1):
            part = _new_hash()
            _walk(directories[bounds[taken[0]]:bounds[taken[0] + 1]], part)
            done.append(taken + part.digest())
        return b"".join(done)

    try:
        child = ForkedCall.start(walk_parts)
        try:
            if meanwhile is not None:
                meanwhile()
            ours = walk_parts()
        except BaseException:
            if child is not None:
                child.drop()
            raise
    finally:
        os.close(queue)
    digests = {}
    for walked in (ours, b"" if child is None else child.result()):
        for i in range(0, len(walked), _PART_RECORD):
            digests[walked[i]] = walked[i + 1:i + _PART_RECORD]
    if len(digests) != count:
        raise OSError("the second walker of the context failed")
    return b"".join(digests[k] for k in range(count))


_PART_RECORD = 1 + _DIGEST_SIZE  # a part's number, then its digest


def replay(inv: Invocation) -> bool:
    """Print what the memo of `inv` recorded if every input it rests on is unchanged;
    False (having printed nothing) when the build must run the normal way."""
    try:
        return _replay(inv)
    finally:
        inv.drop_question()


def _replay(inv: Invocation) -> bool:
    memo = inv.memo
    try:
        if memo is None or memo.get("inputs") != inv.inputs:
            return False
        unchanged = inv.store_unchanged
        if unchanged is None:  # not checked during the walk
            unchanged = _check_store(inv.root, memo)
        if not unchanged:
            return False
        pushed = memo.get("pushed") or []
        if bool(pushed) != inv.push or pushed and not inv.registries_hold(pushed):
            return False
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return False
    steps = memo.get("frame")
    if steps is not None:  # the live display's last frame, drawn for this terminal
        from ocibuild.progress.frame import finished_frame

        sys.stderr.write(finished_frame([tuple(s) for s in steps], 0.0, _terminal_width()))
    sys.stderr.write(memo["stderr"])
    sys.stderr.flush()
    sys.stdout.write(memo["stdout"])
    sys.stdout.flush()
    return True


def _terminal_width() -> int:
    """Columns of the terminal on stderr, as the live display reads them (rich's rule:
    the size the terminal reports, else COLUMNS, else 80)."""
    try:
        columns = os.get_terminal_size(2).columns
    except OSError:
        columns = 0
    if columns <= 0:
        try:
            columns = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            columns = 80
    return columns if columns > 0 else 80


def index_digest(root: str) -> str:
    """A digest of the store's image names (its index.json)."""
    try:
        with open(os.path.join(root, store_paths.INDEX), "rb") as f:
            return _new_hash(f.read()).hexdigest()
    except OSError:
        return ""


def remember(inv: Invocation, *, index: str, used: Sequence[tuple[str, str | None, str]],
             missed: Sequence[str], blobs: Sequence[str], stderr: str, stdout: str,
             frame: Sequence[tuple[str, str]] | None = None,
             pushed: Sequence[str] = ()) -> None:
    """Write the memo of a fully cached build of `inv` (atomically; a failure to write
    it only costs the next build its shortcut). `frame`: the (state, name) of each step
    the live display's last frame listed, for a build on a terminal; `stderr` is then
    what followed the frame. `pushed`: name@digest of each name a --push build pushed
    (its push found them all already there)."""
    memo = {"v": VERSION, "inputs": inv.inputs, "index": index,
            "used": [list(u) for u in used], "missed": list(missed), "blobs": list(blobs),
            "stderr": stderr, "stdout": stdout, "pushed": _name_parts(pushed),
            "frame": None if frame is None else [list(f) for f in frame]}
    from ocibuild.atomic import replace_unsynced  # here: a replayed build writes nothing

    try:
        os.makedirs(os.path.dirname(inv.path), mode=0o700, exist_ok=True)
        replace_unsynced(inv.path, marshal.dumps(memo))
    except OSError:
        pass


def _name_parts(pushed: Sequence[str]) -> list[list[str]]:
    """[registry, repository, tag, digest] of each name@digest (memo_push asks with them)."""
    if not pushed:
        return []
    from ocibuild.reference import parse_reference  # the engine has it loaded

    return [[ref.registry, ref.repository, ref.tag, ref.digest]
            for ref in map(parse_reference, pushed)]


def memo_path(root: str, name: str) -> str:
    """Where the memo of the command line named `name` is kept in the store at `root`."""
    return os.path.join(root, store_paths.REBUILDS, name + ".json")


def _read_memo(path: str) -> dict | None:
    """The memo at `path`; None where there is none of this version (or it is unreadable)."""
    try:
        with open(path, "rb") as f:
            memo = marshal.load(f)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return memo if isinstance(memo, dict) and memo.get("v") == VERSION else None


def _check_store(root: str, memo: Mapping[str, object]) -> bool:
    """Whether the store still holds what `memo` rests on (its image names, blobs and
    cache records), checked under the store's shared lock as a build's look-ups are (a
    prune waits); the records it uses are marked used, as those look-ups mark them."""
    try:
        fd = os.open(os.path.join(root, store_paths.LOCK), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return _store_unchanged(root, memo)
        finally:
            os.close(fd)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _store_unchanged(root: str, memo: Mapping[str, object]) -> bool:
    if index_digest(root) != memo["index"]:
        return False
    blobs = memo["blobs"]
    assert isinstance(blobs, list)
    if not all(os.path.exists(store_paths.blob_path(root, d))
               or os.path.exists(store_paths.lazy_blob_path(root, d)) for d in blobs):
        return False
    # after the cheap checks; sqlite3's C module itself: the package around it adds
    # datetime and the DB-API adapters, ~1.5 ms the memo's check does not use
    try:
        import _sqlite3 as sqlite3
    except ImportError:  # pragma: no cover (an interpreter that lays sqlite3 out otherwise)
        import sqlite3

    rows, missed = memo["used"], memo["missed"]
    assert isinstance(rows, list) and isinstance(missed, list)
    used = {key: (layer, created) for key, layer, created in rows}
    conn = sqlite3.connect(os.path.join(root, store_paths.RECORDS_DB), timeout=60,
                           isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = _records(conn, [*used, *missed])
            same = all(k in found and found[k] == v for k, v in used.items()) \
                and not any(k in found for k in missed)
            if same:  # as the build's own look-ups do: prune ages by last use
                _touch(conn, list(used))
            conn.execute("COMMIT" if same else "ROLLBACK")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return same


def _records(conn: sqlite3.Connection, keys: list[str]) -> dict[str, tuple[str | None, str]]:
    found: dict[str, tuple[str | None, str]] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        rows = conn.execute(
            "SELECT key, json_extract(layer, '$.digest'), created FROM records WHERE key IN "
            f"({','.join('?' * len(chunk))})", chunk).fetchall()
        for key, layer, created in rows:
            found[key] = (layer, created)
    return found


def _touch(conn: sqlite3.Connection, keys: list[str]) -> None:
    import time

    now = time.time()
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        conn.execute(
            f"UPDATE records SET last_used = ? WHERE key IN ({','.join('?' * len(chunk))})",
            [now, *chunk])


def _stat_fields(st: os.stat_result) -> str:
    return f"\0{st.st_mode}\0{st.st_size}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n"


def _lstat_line(path: str) -> str:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"{path}\0absent"
    return path + _stat_fields(st)


def _digest(value: object) -> str:
    """Of lists, strings, numbers and dicts built in a fixed order: repr is canonical."""
    return _new_hash(repr(value).encode(errors="surrogateescape")).hexdigest()
