"""The command's file of its modules' code (ocibuild/cli/module_code.py): a second start
takes its modules from it and they behave as imported the usual way; whatever would make
the usual import find something else (a changed source, a module added before it on the
search path or in its package) wins over the file; a file others can write is not run."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.paths import OCIBUILD, REPO

SCRIPT = """\
import builtins, inspect, json, sys
from ocibuild.cli import module_code

module_code.install()
import pkg.mod, top

print(json.dumps({
    "mod": pkg.mod.VALUE, "top": top.VALUE, "double": pkg.mod.double(21),
    "loaders": {m.__name__: type(m.__loader__).__name__ for m in (pkg, pkg.mod, top)},
    "file": pkg.mod.__file__, "cached": pkg.mod.__cached__, "path": pkg.__path__,
    "source": inspect.getsource(pkg.mod.double).strip(),
    "poisoned": getattr(builtins, "POISONED", False)}))
"""
SERVED = "_Finder"  # the loader of a module taken from the file
USUAL = "SourceFileLoader"


def _tree(tmp: Path) -> Path:
    lib = tmp / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "pkg" / "__init__.py").write_text("")
    (lib / "pkg" / "mod.py").write_text("VALUE = 'mod'\n\n\ndef double(x):\n"
                                        "    return 2 * x\n")
    (lib / "top.py").write_text("VALUE = 'top'\n")
    (tmp / "first").mkdir()
    (tmp / "cache").mkdir()
    return lib


def _run(tmp: Path, safe_path: bool = True, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environ.update({"XDG_CACHE_HOME": str(tmp / "cache"),
                    "PYTHONPATH": os.pathsep.join([str(tmp / "first"), str(tmp / "lib"),
                                                   str(REPO)]), **env})
    # -P: the working directory is not on the search path, as for the installed command
    flags = ["-P"] if safe_path else []
    done = subprocess.run([sys.executable, *flags, "-c", SCRIPT],
                          capture_output=True, text=True, env=environ, cwd=tmp)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _files(tmp: Path) -> list[Path]:
    return sorted((tmp / "cache" / "ocibuild").glob("module-code.*"))


def _written(tmp: Path) -> tuple[int, int] | None:
    """The file's identity: a start that imported something it lacked replaces it."""
    files = _files(tmp)
    assert len(files) <= 1, files
    if not files:
        return None
    st = files[0].stat()
    return st.st_ino, st.st_mtime_ns


def _edit(path: Path, text: str) -> None:
    """Change a file as an editor does, its time surely later than the first one's."""
    old = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(old + 10**9, old + 10**9))


def test_a_second_start_takes_its_modules_from_the_file(tmp_path: Path) -> None:
    lib = _tree(tmp_path)
    first = _run(tmp_path)
    assert set(first["loaders"].values()) == {USUAL}
    assert (written := _written(tmp_path)) is not None
    assert _files(tmp_path)[0].stat().st_mode & 0o777 == 0o600
    second = _run(tmp_path)
    assert set(second["loaders"].values()) == {SERVED}
    assert _written(tmp_path) == written  # nothing lacked: not written again
    # the modules are the same, down to what tracebacks and inspect read
    assert {k: v for k, v in second.items() if k != "loaders"} \
        == {k: v for k, v in first.items() if k != "loaders"}
    assert second["file"] == str(lib / "pkg" / "mod.py")
    assert second["cached"].endswith(".pyc") and second["path"] == [str(lib / "pkg")]
    assert second["double"] == 42 and second["source"].startswith("def double(x):")


def test_a_changed_source_is_imported_from_the_source(tmp_path: Path) -> None:
    lib = _tree(tmp_path)
    _run(tmp_path)
    _run(tmp_path)
    _edit(lib / "pkg" / "mod.py", "VALUE = 'edited'\n\n\ndef double(x):\n    return 3 * x\n")
    written = _written(tmp_path)
    third = _run(tmp_path)
    assert third["mod"] == "edited" and third["double"] == 63
    assert third["loaders"]["pkg.mod"] == USUAL and third["loaders"]["top"] == SERVED
    assert _written(tmp_path) != written  # the new code replaced the old
    fourth = _run(tmp_path)
    assert fourth["mod"] == "edited" and fourth["loaders"]["pkg.mod"] == SERVED


def test_a_module_found_before_it_wins(tmp_path: Path) -> None:
    lib = _tree(tmp_path)
    _run(tmp_path)
    # earlier on the search path
    (tmp_path / "first" / "top.py").write_text("VALUE = 'shadow'\n")
    result = _run(tmp_path)
    assert result["top"] == "shadow" and result["loaders"]["top"] == USUAL
    # in the package's directory: a package of the same name comes before a module
    (lib / "pkg" / "mod").mkdir()
    (lib / "pkg" / "mod" / "__init__.py").write_text(
        "VALUE = 'package'\n\n\ndef double(x):\n    return 4 * x\n")
    result = _run(tmp_path)
    assert result["mod"] == "package" and result["double"] == 84
    assert result["loaders"]["pkg.mod"] == USUAL
    assert _run(tmp_path)["loaders"] == {"pkg": SERVED, "pkg.mod": SERVED, "top": SERVED}


def test_a_file_others_can_write_is_not_run(tmp_path: Path) -> None:
    _tree(tmp_path)
    _run(tmp_path)
    path = _files(tmp_path)[0]
    # the same file, with each module's code setting builtins.POISONED too
    from ocibuild.cli import module_code

    data = memoryview(path.read_bytes())
    key, _, index = module_code._header(data)
    codes = {}
    for name, (origin, package, mtime, size, _, _) in index.items():
        code = compile(Path(origin).read_text() + "\nimport builtins\nbuiltins.POISONED = True\n",
                       origin, "exec", dont_inherit=True)
        codes[name] = ((origin, package, mtime, size), marshal.dumps(code))
    path.write_bytes(module_code._encode(key, codes))
    path.chmod(0o600)
    assert _run(tmp_path)["poisoned"] is True  # it would run: the test's premise
    path.chmod(0o620)
    result = _run(tmp_path)
    assert result["poisoned"] is False and set(result["loaders"].values()) == {USUAL}
    assert path.stat().st_mode & 0o777 == 0o600  # replaced by one of this user's


def test_a_damaged_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    _tree(tmp_path)
    _run(tmp_path)
    path = _files(tmp_path)[0]
    for damaged in (path.read_bytes()[:100], b""):
        path.write_bytes(damaged)
        result = _run(tmp_path)
        assert result["mod"] == "mod" and set(result["loaders"].values()) == {USUAL}
        assert _run(tmp_path)["loaders"]["pkg.mod"] == SERVED


def test_nothing_is_kept_for_a_search_path_with_the_working_directory(tmp_path: Path) -> None:
    _tree(tmp_path)
    # `python -c` (and -m) search the working directory first: the file would have to
    # follow it from one command to the next
    result = _run(tmp_path, safe_path=False)
    assert result["mod"] == "mod" and _files(tmp_path) == []
    _run(tmp_path, PYTHONDONTWRITEBYTECODE="1")  # as Python's own bytecode files
    assert _files(tmp_path) == []


def test_the_command_takes_its_modules_from_the_file(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environ.update({"XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONVERBOSE": "1"})
    loaders = []
    for _ in range(2):
        done = subprocess.run([OCIBUILD, "--root", tmp_path / "store", "images"],
                              capture_output=True, text=True, env=environ, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        # python -v: "import 'click.core' # <...SourceFileLoader object at 0x...>"
        line = next(x for x in done.stderr.splitlines() if x.startswith("import 'click.core'"))
        loaders.append(line)
        time.sleep(0.01)
    assert USUAL in loaders[0] and "module_code._Finder" in loaders[1]
