"""The command's cache of the code dataclasses generate (ocibuild/cli/generated_code.py):
a second start compiles none of it, the classes behave as without the cache, and a cache
that cannot be trusted is neither run nor kept."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import OCIBUILD, REPO

# Makes a dataclass (a module without __future__ imports, as most libraries' are) after
# installing the cache, and tells how the class behaves
SCRIPT = """\
import builtins, dataclasses, json, sys
from ocibuild.cli import generated_code

if sys.argv[1] == "cached":
    generated_code.install()

@dataclasses.dataclass(frozen=True, order=True)
class Point:
    x: int
    tags: tuple = dataclasses.field(default_factory=tuple)

p = Point(1)
print(json.dumps({
    "repr": repr(p), "eq": p == Point(1), "lt": p < Point(2),
    "hash": hash(p) == hash(Point(1)), "defaults": Point(2).tags == (),
    "annotations": {k: repr(v) for k, v in Point.__init__.__annotations__.items()},
    "poisoned": getattr(builtins, "POISONED", False)}))
"""


def _run(tmp: Path, mode: str = "cached", **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environ.update({"XDG_CACHE_HOME": str(tmp), "PYTHONPATH": str(REPO), **env})
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                          text=True, env=environ, cwd=tmp)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _cache_file(tmp: Path) -> Path:
    return tmp / "ocibuild" / f"dataclass-code.{sys.implementation.cache_tag}.marshal"


def _written(path: Path) -> tuple[int, int] | None:
    """The cache file's identity: a start that compiled something replaces the file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def test_a_second_start_compiles_nothing_and_the_class_is_the_same(tmp_path: Path) -> None:
    path = _cache_file(tmp_path)
    plain = _run(tmp_path, "plain")
    assert _written(path) is None
    first = _run(tmp_path)
    assert (written := _written(path)) is not None
    assert path.stat().st_mode & 0o777 == 0o600
    second = _run(tmp_path)
    assert _written(path) == written  # every text was in the cache
    # the annotations are the types themselves, as dataclasses compiles them, not the
    # strings a compile inheriting the cache module's __future__ import would give
    assert plain["annotations"] == {"x": "<class 'int'>", "tags": "<class 'tuple'>",
                                    "return": "None"}
    assert first == plain and second == plain


def _poisoned_cache(tmp: Path) -> Path:
    """A cache whose entries do what they did, and set builtins.POISONED."""
    _run(tmp)
    path = _cache_file(tmp)
    header, _, body = path.read_bytes().partition(b"\n")
    poisoned = {text: marshal.dumps(compile("import builtins; builtins.POISONED = True\n"
                                            + text, "<string>", "exec", dont_inherit=True))
                for text in marshal.loads(body)}
    path.write_bytes(header + b"\n" + marshal.dumps(poisoned))
    return path


def test_a_cache_others_can_write_is_not_run(tmp_path: Path) -> None:
    path = _poisoned_cache(tmp_path)
    assert _run(tmp_path)["poisoned"] is True  # it would run: the test's premise
    path.chmod(0o666)
    result = _run(tmp_path)
    assert result["poisoned"] is False and result["eq"] is True
    assert path.stat().st_mode & 0o777 == 0o600  # replaced by one of this user's


def test_a_damaged_cache_is_ignored_and_replaced(tmp_path: Path) -> None:
    path = _cache_file(tmp_path)
    _run(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    damaged = _written(path)
    assert _run(tmp_path)["eq"] is True
    assert (replaced := _written(path)) != damaged
    _run(tmp_path)
    assert _written(path) == replaced


def test_no_cache_is_written_where_python_writes_no_bytecode(tmp_path: Path) -> None:
    assert _run(tmp_path, PYTHONDONTWRITEBYTECODE="1")["eq"] is True
    assert _written(_cache_file(tmp_path)) is None


def test_the_command_keeps_its_cache(tmp_path: Path) -> None:
    # a build that stops at its Dockerfile has loaded the engine's modules
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environ["XDG_CACHE_HOME"] = str(tmp_path)
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FRM busybox\n")
    path = _cache_file(tmp_path)
    written = []
    for run in range(2):
        # a store of its own each time: the second does not meet what the first left
        # (a starter stopped late leaves a directory the next build clears, with a class
        # the first never made). The native snapshotter: with overlay, a new store's
        # probe starts the file-op server on a thread first, and whether that thread
        # made the sandbox's classes before the error ended the command was a race (one
        # run in five, the second start then added them: seen in CI)
        done = subprocess.run([OCIBUILD, "--root", tmp_path / f"store{run}", "build",
                               "--snapshotter", "native", tmp_path / "ctx"],
                              capture_output=True, text=True, env=environ, cwd=tmp_path)
        assert "unknown instruction: FRM" in done.stderr
        written.append(_written(path))
    assert written[0] is not None and written[1] == written[0]


def test_no_cache_is_written_into_another_users_directory(tmp_path: Path) -> None:
    # as root under sudo with the user's HOME: a root-owned cache there would keep the
    # user from ever having one
    home = tmp_path / "someone"
    home.mkdir()
    os.chown(home, 65534, 65534)
    assert _run(tmp_path, XDG_CACHE_HOME=str(home / ".cache"))["eq"] is True
    assert list(home.iterdir()) == []
