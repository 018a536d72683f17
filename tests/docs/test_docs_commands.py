"""Every shell block in docs/*.md and the README runs, as a reader would run it.

Each document's blocks run in order in one fresh directory (also their HOME), as the
unprivileged user ocib-sub, or as root where the block's marker says `as=root`. A
block marked `checkout` finds a copy of this repository (its tracked and new files) in
./ocibuild; `needs-registry` gets REGISTRY, a TLS registry run here holding
library/busybox:latest, trusted through SSL_CERT_FILE. `ocibuild` on PATH is this
checkout's. The CI recipes in docs/ci.md run their shell lines the same way, against
that registry, with the variables their CI system would set. The README's test command
is not run (it is what runs this test): `.ci/run` must run it.

The documents and recipes run two at a time (doc_runs.py): the first of these tests
starts the jobs of all that the session selected, and each test waits for its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.ci_recipes import Recipe, github_recipe, gitlab_recipe
from tests.docs.doc_runs import BlockGate, DocJobs
from tests.docs.markdown_blocks import FENCE, MARKER, Block, code_blocks
from tests.support.paths import OCIBUILD, REPO
from tests.support.registry_server import RegistryServer
from tests.support.users import User

DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")
BLOCK_TIMEOUT = 240
# pip's downloads, kept between runs so that the install recipes cost seconds
PIP_CACHE = {"user": Path("/tmp/ocib-docs-pip-cache"), "root": Path("/tmp/ocib-docs-pip-root")}
# pipx's shared libraries (the venv holding the pip every pipx venv uses), which pipx
# makes on its first use and refreshes after 30 days: kept between runs, one per job
# so that two jobs never make one at once
PIPX_SHARED = Path("/tmp/ocib-docs-pipx-shared")
ID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))
GATE = BlockGate()


def _runnable(block: Block) -> bool:
    return block.is_shell and "suite" not in block.marks


def _docs_with_commands() -> list[Path]:
    return [doc for doc in DOCS if any(_runnable(b) for b in code_blocks(doc))]


@dataclass(frozen=True)
class DocsRegistry:
    host: str
    ca_bundle: Path  # the system's CAs and the registry's

    def tags(self, repository: str) -> list[str]:
        ctx = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"https://{self.host}/v2/{repository}/tags/list",
                                    context=ctx, timeout=10) as resp:
            return sorted(json.load(resp).get("tags") or [])


@pytest.fixture(scope="module")
def docs_registry(busybox_rootfs: Path) -> Iterator[DocsRegistry]:
    server = RegistryServer.start("tls")
    base = Path(tempfile.mkdtemp(prefix="ocib-docs-registry-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        assert server.certs is not None
        bundle = base / "ca-bundle.pem"
        bundle.write_bytes(SYSTEM_CAS.read_bytes() + server.certs.ca_cert.read_bytes())
        bundle.chmod(0o644)
        layout = base / "busybox.oci"
        subprocess.run([OCIBUILD, "--root", base / "store", "import", busybox_rootfs,
                        "--tag", "busybox:latest", "--output", f"oci:{layout}"],
                       check=True, capture_output=True)
        subprocess.run([OCIBUILD, "push", "--registry-ca", server.certs.ca_cert,
                        f"oci:{layout}:latest", f"{server.host}/library/busybox:latest"],
                       check=True, capture_output=True)
        yield DocsRegistry(server.host, bundle)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def ocibuild_bin() -> Iterator[Path]:
    """A directory holding only `ocibuild` (this checkout's): what PATH gives a reader
    who installed it, without the test venv's python and pip."""
    path = Path(tempfile.mkdtemp(prefix="ocib-docs-bin-", dir="/tmp"))
    os.chmod(path, 0o755)
    (path / "ocibuild").symlink_to(OCIBUILD)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def copy_checkout(dest: Path, owner: User) -> None:
    """This repository's tracked and untracked (not ignored) files, as a clone would
    have them plus the work in progress, owned by `owner`."""
    listed = subprocess.run(
        ["git", "-c", f"safe.directory={REPO}", "ls-files", "-z", "--cached", "--others",
         "--exclude-standard"], cwd=REPO, check=True, capture_output=True).stdout
    for name in sorted(set(listed.decode().split("\0")) - {""}):
        src = REPO / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    for path in [dest, *dest.rglob("*")]:
        os.lchown(path, owner.uid, owner.gid)


def _pip_cache(who: str, user: User) -> Path:
    path = PIP_CACHE[who]
    path.mkdir(mode=0o755, exist_ok=True)
    if who == "user":
        os.chown(path, user.uid, user.gid)
    return path


def _pipx_shared(job: str, user: User) -> Path:
    PIPX_SHARED.mkdir(mode=0o755, exist_ok=True)
    path = PIPX_SHARED / job
    path.mkdir(mode=0o755, exist_ok=True)
    os.chown(path, user.uid, user.gid)
    return path


def _base_env(workdir: Path, bindir: Path, who: str, user: User, job: str) -> dict[str, str]:
    sbin = "/usr/local/sbin:/usr/sbin:/sbin:" if who == "root" else ""
    env = {"HOME": str(workdir), "PATH": f"{sbin}/usr/local/bin:/usr/bin:/bin:{bindir}",
           "LANG": "C.UTF-8", "USER": user.name if who == "user" else "root",
           "PIP_CACHE_DIR": str(_pip_cache(who, user))}
    if who == "user":  # the docs run pipx as the user only
        env["PIPX_SHARED_LIBS"] = str(_pipx_shared(job, user))
    return env


def _gate(who: str) -> AbstractContextManager[None]:
    """Hold this around anything run as the test user or as root: a root block of
    another job may be rewriting /etc/subuid."""
    return GATE.exclusive() if who == "root" else GATE.shared()


def _run_ungated(script: str, *, who: str, user: User, cwd: Path,
                 env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = ["bash", "-e", "-o", "pipefail", "-c", script]
    if who == "root":
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=BLOCK_TIMEOUT)
    return user.run(argv, cwd=cwd, env=env, timeout=BLOCK_TIMEOUT)


def _run(script: str, *, who: str, user: User, cwd: Path,
         env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    with _gate(who):
        return _run_ungated(script, who=who, user=user, cwd=cwd, env=env)


def _failure(where: str, who: str, script: str, proc: subprocess.CompletedProcess[str]) -> str:
    return (f"{where}: exit {proc.returncode} (as {who})\n--- commands\n{script}"
            f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-4000:]}")


@contextmanager
def _workdir(user: User) -> Iterator[Path]:
    path = user.make_tempdir(prefix="ocib-docs-")
    try:
        yield path
    finally:
        # root needs no chmod to remove what the user and its subordinate ids wrote
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)


@pytest.fixture(scope="module")
def doc_jobs(request: pytest.FixtureRequest, sub_user: User, docs_registry: DocsRegistry,
             ocibuild_bin: Path) -> Iterator[DocJobs]:
    """The job of each document and recipe test the session runs, started in test order."""
    jobs = DocJobs()
    for item in request.session.items:
        if getattr(item, "module", None) is not request.module or \
                not hasattr(item, "callspec"):
            continue
        params = item.callspec.params
        if item.originalname == test_every_shell_block_runs.__name__:
            doc = params["doc"]
            jobs.submit(doc.name, lambda doc=doc: _run_doc(doc, sub_user, docs_registry,
                                                           ocibuild_bin))
        elif item.originalname == test_ci_recipe_builds_pushes_and_caches.__name__:
            kind = params["kind"]
            jobs.submit(f"ci:{kind}", lambda kind=kind: _run_ci_recipe(
                kind, sub_user, docs_registry))
    try:
        yield jobs
    finally:
        jobs.close()


@pytest.mark.parametrize("doc", _docs_with_commands(), ids=lambda p: p.name)
def test_every_shell_block_runs(doc: Path, doc_jobs: DocJobs) -> None:
    doc_jobs.result(doc.name)


def _run_doc(doc: Path, sub_user: User, docs_registry: DocsRegistry, ocibuild_bin: Path) -> None:
    with _workdir(sub_user) as workdir:
        _run_blocks(doc, workdir, sub_user, docs_registry, ocibuild_bin)


def _run_blocks(doc: Path, workdir: Path, sub_user: User, docs_registry: DocsRegistry,
                ocibuild_bin: Path) -> None:
    for block in filter(_runnable, code_blocks(doc)):
        who = block.marks.get("as", "user")
        env = _base_env(workdir, ocibuild_bin, who, sub_user, doc.name)
        if "checkout" in block.marks and not (workdir / "ocibuild").exists():
            copy_checkout(workdir / "ocibuild", sub_user)
        if "needs-registry" in block.marks:
            env.update(REGISTRY=docs_registry.host, SSL_CERT_FILE=str(docs_registry.ca_bundle))
        if "env" in block.marks:
            name, _, value = block.marks["env"].partition("=")
            env[name] = value
        cwd = workdir / "ocibuild" if block.marks.get("cwd") == "checkout" else workdir
        proc = _run(block.text, who=who, user=sub_user, cwd=cwd, env=env)
        assert proc.returncode == 0, _failure(block.where, who, block.text, proc)


def test_markers_are_understood() -> None:
    """A marker the test does not act on would leave a block unchecked."""
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines[:-1]):
            assert not MARKER.match(line) or FENCE.match(lines[i + 1]), \
                f"{doc.name}:{i + 1}: a docs-test marker must be right before a code fence"
        for block in code_blocks(doc):  # raises on an unknown marker
            assert block.lang != "console", \
                f"{block.where}: a console block is not run; write commands in a sh block"
            assert block.marks.get("as", "user") in ("user", "root"), block.where
            assert block.marks.get("cwd", "checkout") == "checkout", block.where
            if "ci" in block.marks:
                assert block.lang == "yaml" and block.marks["ci"] in ("github", "gitlab"), \
                    block.where
            elif block.marks:
                assert block.is_shell, f"{block.where}: a marker on a block that is not run"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    suite = [b for doc in DOCS for b in code_blocks(doc) if "suite" in b.marks]
    assert suite, "the README shows the command that runs the tests, marked docs-test: suite"
    ci_lines = {line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()}
    for block in suite:
        for line in filter(None, map(str.strip, block.text.splitlines())):
            assert line in ci_lines, f"{block.where}: .ci/run does not run `{line}`"


# -- the CI recipes ---------------------------------------------------------------------
def _recipe(kind: str) -> tuple[Block, Recipe]:
    blocks = [b for b in code_blocks(REPO / "docs" / "ci.md") if b.marks.get("ci") == kind]
    assert len(blocks) == 1, f"docs/ci.md should hold one {kind} recipe"
    parse = github_recipe if kind == "github" else gitlab_recipe
    return blocks[0], parse(blocks[0].text, blocks[0].where)


def _ci_variables(kind: str, registry: DocsRegistry, source: Path) -> tuple[dict[str, str], str]:
    """What the CI system (and the recipe's own settings) would give the job, pointed at
    the test's registry; and the repository the job pushes to."""
    if kind == "github":
        return {"OCIBUILD_SOURCE": str(source), "REGISTRY": registry.host,
                "REGISTRY_USER": "ci-bot", "REGISTRY_PASSWORD": "ci-token",
                "GITHUB_REPOSITORY": "Example/App", "GITHUB_SHA": "0f1e2d3c4b5a",
                "GITHUB_ACTOR": "ci-bot"}, "example/app"
    return {"OCIBUILD_SOURCE": str(source), "CI_REGISTRY": registry.host,
            "CI_REGISTRY_IMAGE": f"{registry.host}/group/project",
            "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "ci-token",
            "CI_COMMIT_SHORT_SHA": "0f1e2d3c"}, "group/project"


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_ci_recipe_builds_pushes_and_caches(kind: str, doc_jobs: DocJobs) -> None:
    doc_jobs.result(f"ci:{kind}")


def _run_ci_recipe(kind: str, sub_user: User, docs_registry: DocsRegistry) -> None:
    with _workdir(sub_user) as workdir:
        _run_recipe(kind, workdir, sub_user, docs_registry)


def _run_recipe(kind: str, workdir: Path, sub_user: User, docs_registry: DocsRegistry) -> None:
    block, recipe = _recipe(kind)
    assert set(recipe.uses) <= {"actions/checkout@v4"}, \
        f"{block.where}: the test stands in only for actions/checkout: {recipe.uses}"
    copy_checkout(workdir / "ocibuild-src", sub_user)
    variables, repository = _ci_variables(kind, docs_registry, workdir / "ocibuild-src")
    missing = set(recipe.variables) - set(variables)
    assert not missing, f"{block.where}: the test gives no value for {sorted(missing)}"
    project = workdir / "project"  # the repository the job checked out
    project.mkdir()
    (project / "Dockerfile").write_text(f"FROM {docs_registry.host}/library/busybox:latest\n"
                                        "RUN echo built in CI > /ci.txt\nCOPY . /src\n")
    os.chown(project, sub_user.uid, sub_user.gid)
    os.chown(project / "Dockerfile", sub_user.uid, sub_user.gid)
    for step in recipe.steps:
        who = "root" if step.as_root else "user"
        # no ocibuild on PATH: the recipe installs its own
        env = {**_base_env(workdir, Path("/nonexistent"), who, sub_user, f"ci-{kind}"),
               **variables,
               "SSL_CERT_FILE": str(docs_registry.ca_bundle)}
        if kind == "github":
            env["PATH"] = f"{workdir}/.local/bin:{env['PATH']}"  # where pipx puts commands
            # `sudo CMD` lines are expanded by the job user's shell before sudo runs
            env["USER"] = sub_user.name
        # read with the step, inside its gate: a root block of another job may rewrite them
        with _gate(who):
            id_files = {path: path.read_text() for path in ID_FILES}
            proc = _run_ungated(step.script, who=who, user=sub_user, cwd=project, env=env)
            changed = [path for path, text in id_files.items() if path.read_text() != text]
        assert proc.returncode == 0, _failure(f"{block.where} {step.name}", who, step.script,
                                              proc)
        # the user has a range: nothing to add
        assert not changed, f"{block.where} {step.name} changed {changed}"
    tags = docs_registry.tags(repository)
    assert "buildcache" in tags, tags
    assert any(t not in ("buildcache", "latest") for t in tags), tags
    # the next run, on another runner (an empty store), takes the step from that cache
    with _gate("user"):
        again = sub_user.run([OCIBUILD, "--root", workdir / "next-runner", "build",
                              "--progress", "plain", "--cache-from",
                              f"type=registry,ref={docs_registry.host}/{repository}:buildcache",
                              "."], cwd=project,
                             env={"SSL_CERT_FILE": str(docs_registry.ca_bundle)})
    assert again.returncode == 0, again.stderr
    assert re.search(r"RUN echo built in CI > /ci.txt\n#\d+ CACHED", again.stderr), again.stderr
