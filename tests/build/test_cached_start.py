"""A fully cached rebuild that the rebuild memo cannot answer (the engine's own, as in
CI with a push or a remote cache) costs mostly the interpreter's start and the modules
it loads (issue 21). It loads nothing of the paths that run steps, start processes,
compress layers or reach a registry: those load when a build needs them. (The file-op
server the command starts before it knows, idspace/early.py, loads its modules in its
own processes.) A build the rebuild memo answers loads less again: neither click, the
engine nor OpenSSL."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.build.conftest import Builder, copy_fixture, step_states
from tests.support.paths import OCIBUILD, REPO

# `ocibuild ARGS` as the console script runs it, then the modules the command loaded (the
# file-op server it may start before the engine loads imports its own, in its own process)
REPORTS_MODULES = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('MODULES=' + ' '.join(sorted(sys.modules))))\n"
    "from ocibuild.cli import main\n"
    "sys.exit(main())\n"
)
# module -> what loading it on a cached build would mean
NOT_LOADED = {
    "ocibuild.sandbox.runner": "the RUN sandbox",
    "ocibuild.sandbox.zygote_client": "the sandbox's start-up helper",
    "ocibuild.idspace.worker": "the file-op helper process",
    "subprocess": "a child process",
    "concurrent.futures": "worker threads",
    "ocibuild.solver.execute": "the RUN path",
    "ocibuild.solver.fileop": "the COPY path",
    "ocibuild.snapshot.layerdirs": "layer extraction",
    "ocibuild.oci.compression": "the layer codecs",
    "zstandard": "the zstd codec",
    "isal": "the gzip codec",
    "ocibuild.registry.client": "the registry client",
    "ocibuild.registry.options": "the registry options (no registry flag given)",
    "ssl": "TLS",
    "rich": "the live display",
    "csv": "the -o parser",
    "ocibuild.graph.state": "the graph API's states",
    "difflib": "click's did-you-mean, made for every short option it tried as a long one",
    "_hashlib": "OpenSSL (~2 ms): the digests of op specs, keys, configs and manifests are "
                "small, and the built-in sha256 makes them",
}


def _cached_build_modules(builder: Builder, ctx: Path, tag: str,
                          cached: bool = True) -> set[str]:
    """The modules `ocibuild build --progress plain -t TAG CTX` loaded, run as the
    console script runs it; every step of it must have come from the cache (unless not
    `cached`)."""
    proc = builder.user.run(
        [Path(OCIBUILD).parent / "python", "-c", REPORTS_MODULES, "--root", builder.root,
         "build", "--progress", "plain", "-t", tag, ctx],
        env={"PYTHONPATH": str(REPO)}, cwd=builder.tmp)
    assert proc.returncode == 0, proc.stderr
    assert cached is (set(step_states(proc.stderr).values()) == {"CACHED"})
    return set(proc.stdout.rpartition("MODULES=")[2].split())


def test_a_cached_rebuild_without_the_memo_loads_no_step_or_codec_path(
        builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    builder.build(ctx, "-t", "seed:start")
    shutil.rmtree(builder.root / "rebuilds")  # the engine answers, not the memo
    loaded = _cached_build_modules(builder, ctx, "seed:start")
    assert "ocibuild.builder" in loaded  # the engine ran
    assert {m: why for m, why in NOT_LOADED.items() if m in loaded} == {}


# what a build the rebuild memo answers must not load: it is answered for about the
# interpreter's own start
MEMO_NOT_LOADED = {
    "click": "the command-line parser",
    "ocibuild.builder": "the engine",
    "ocibuild.cache": "the cache records' module",
    "_hashlib": "OpenSSL (~2.5 ms; the memo hashes with the built-in blake2b)",
    "typing": "typing",
    "threading": "threads",
    "datetime": "the sqlite3 package's date adapters (~1.5 ms; its C module checks the "
                "records)",
}


def test_a_build_the_memo_answers_loads_neither_the_engine_nor_openssl(
        builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    builder.build(ctx, "-t", "seed:memo-start")
    shutil.rmtree(builder.root / "rebuilds")
    # the engine's cached build leaves the memo (under this command line's name),
    # which answers the same command
    assert "ocibuild.builder" in _cached_build_modules(builder, ctx, "seed:memo-start")
    loaded = _cached_build_modules(builder, ctx, "seed:memo-start")
    assert "ocibuild.rebuild_memo" in loaded
    assert {m: why for m, why in MEMO_NOT_LOADED.items() if m in loaded} == {}


def test_a_cold_build_loads_no_openssl_in_the_command_itself(builder: Builder) -> None:
    # its steps' layers are hashed by the file-op helper processes, which load it there
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    loaded = _cached_build_modules(builder, ctx, "seed:cold", cached=False)
    assert "ocibuild.solver.execute" in loaded  # the steps ran
    assert "_hashlib" not in loaded
