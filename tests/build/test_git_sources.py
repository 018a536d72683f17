"""Git sources: `ADD <git url> /dst`, a git URL as the build context and as a
`--build-context`, against a local `git daemon` (git://) and a local smart-HTTP server
(`git http-backend`), built as the unprivileged user.

Behaviour read from BuildKit: frontend/dockerfile/dfgitutil/git_ref.go and
util/gitutil/git_url.go (what is a git URL; `#ref:subdir`), dockerfile2llb/convert_copy.go
(ADD copies the tree's root into the destination; --keep-git-dir; --checksum must agree
with the URL's), source/git/source.go (the cache key is the resolved commit, so an
unchanged ref needs no fetch; .git only with keep-git-dir; GIT_AUTH_TOKEN /
GIT_AUTH_HEADER secrets, per host first; the ssh agent for ssh remotes).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocibuild.errors import UsageError
from ocibuild.sources.git_url import parse
from tests.build.conftest import Builder, give_to, step_states, write_context
from tests.support.git_servers import (
    HttpRemote,
    commit,
    git,
    git_daemon,
    make_repo,
    smart_http,
)
from tests.support.paths import OCIBUILD
from tests.support.users import User, remove_tree


@dataclass
class Remotes:
    base: Path  # the served directory: base/<name>.git are the repositories
    http: HttpRemote
    daemon: str  # git://127.0.0.1:PORT
    first: str  # commit of tag v1 (annotated) in repo.git
    head: str  # main's commit in repo.git


@pytest.fixture(scope="module")
def remotes() -> Iterator[Remotes]:
    base = Path(tempfile.mkdtemp(prefix="ocib-git-"))
    os.chmod(base, 0o755)
    repo = base / "repo.git"
    first = make_repo(repo, {"a.txt": "one\n", "sub/b.txt": "bee\n", "sub/deep/c.txt": "sea\n"})
    git(repo, "tag", "-a", "v1", "-m", "release 1")
    git(repo, "checkout", "--quiet", "-b", "feature")
    commit(repo, {"feature.txt": "feature\n"}, "feature")
    git(repo, "checkout", "--quiet", "main")
    head = commit(repo, {"a.txt": "two\n"}, "second")
    make_repo(base / "ctx.git", {
        "app/Dockerfile": "FROM scratch\nCOPY . /ctx/\n",
        "app/hello.txt": "hello from git\n", "top.txt": "not in the subdir\n",
        "Dockerfile": "FROM scratch\nCOPY . /all/\n"})
    with smart_http(base) as http, git_daemon(base) as daemon:
        yield Remotes(base, http, daemon, first, head)
    shutil.rmtree(base)


def _export(builder: Builder, files: dict[str, str], *args: str, name: str = "out",
            check: bool = True) -> tuple[Path, subprocess.CompletedProcess[str]]:
    ctx = write_context(builder.tmp / f"ctx-{name}", files, builder.user)
    out = builder.tmp / name
    proc, _ = builder.build("-o", f"type=local,dest={out}", *args, ctx, check=check)
    return out, proc


def _read(path: Path) -> str:
    return path.read_text()


@pytest.mark.parametrize("transport", ["http", "git"])
def test_add_git_branch_tag_commit_subdir_and_keep_git_dir(
        builder: Builder, remotes: Remotes, transport: str) -> None:
    """ADD of a git URL puts the tree at the ref into the destination, without .git;
    `#ref:subdir` takes a subdirectory as the root; --keep-git-dir=true keeps a .git
    whose HEAD is the commit."""
    url = (remotes.http.url if transport == "http" else remotes.daemon) + "/repo.git"
    dockerfile = (
        "FROM scratch\n"
        f"ADD {url} /default\n"
        f"ADD {url}#main /branch\n"
        f"ADD {url}#feature /other\n"
        f"ADD {url}#v1 /tag\n"
        f"ADD {url}#{remotes.first} /commit\n"
        f"ADD {url}#main:sub /subdir\n"
        f"ADD --keep-git-dir=true {url}#v1 /kept\n")
    out, _ = _export(builder, {"Dockerfile": dockerfile})
    assert _read(out / "default/a.txt") == "two\n"
    assert _read(out / "branch/a.txt") == "two\n"
    assert not (out / "branch/.git").exists()
    assert not (out / "branch/feature.txt").exists()
    assert _read(out / "other/feature.txt") == "feature\n"
    assert _read(out / "tag/a.txt") == "one\n"
    assert _read(out / "commit/a.txt") == "one\n"
    assert sorted(p.name for p in (out / "subdir").iterdir()) == ["b.txt", "deep"]
    assert _read(out / "subdir/deep/c.txt") == "sea\n"
    assert (out / "kept/.git").is_dir()
    kept_head = subprocess.run(
        ["git", "-c", "safe.directory=*", "--git-dir", out / "kept/.git", "rev-parse",
         "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert kept_head == remotes.first
    assert _read(out / "kept/a.txt") == "one\n"


def test_unchanged_head_hits_the_cache_without_fetching_and_a_moved_one_misses(
        builder: Builder, remotes: Remotes) -> None:
    """The cache key is the commit the ref resolves to: with the branch unchanged the
    ADD step is CACHED and the server is only asked for its refs, never for objects;
    a new commit on the branch runs the step again with the new tree, and
    --explain-cache names the new commit."""
    repo = remotes.base / "moving.git"
    first = make_repo(repo, {"f.txt": "v1\n"})
    url = f"{remotes.http.url}/moving.git#main"
    files = {"Dockerfile": f"FROM busybox:latest\nADD {url} /src\nRUN cat /src/f.txt\n"}
    ctx = write_context(builder.tmp / "ctx", files, builder.user)

    proc, _ = builder.build(ctx)
    add = next(name for name in step_states(proc.stderr) if "ADD" in name)
    assert step_states(proc.stderr)[add] == "DONE"
    fetched = remotes.http.fetches.count("/moving.git")
    assert fetched == 1
    listed = remotes.http.listings.count("/moving.git")

    proc, _ = builder.build(ctx)
    assert step_states(proc.stderr)[add] == "CACHED"
    assert remotes.http.fetches.count("/moving.git") == fetched  # no objects fetched
    assert remotes.http.listings.count("/moving.git") > listed  # but the ref was checked

    moved = commit(repo, {"f.txt": "v2\n"}, "moved")
    out = builder.tmp / "out"
    proc, _ = builder.build("-o", f"type=local,dest={out}", "--explain-cache", ctx)
    assert step_states(proc.stderr)[add] == "DONE"
    assert f"git source: {url} at {first[:12]} -> {url} at {moved[:12]}" in proc.stderr
    assert _read(out / "src/f.txt") == "v2\n"
    assert remotes.http.fetches.count("/moving.git") == fetched + 1


def test_git_url_as_the_build_context_and_as_a_named_context(
        builder: Builder, remotes: Remotes) -> None:
    """A git URL (with `#ref:subdir`) is a build context: its Dockerfile and files come
    from the repository, without .git unless BUILDKIT_CONTEXT_KEEP_GIT_DIR is set
    (dockerui's DetectGitContext); one given as `--build-context NAME=<git url>`
    answers COPY --from=NAME."""
    out = builder.tmp / "out"
    builder.build("-o", f"type=local,dest={out}", f"{remotes.http.url}/ctx.git#main:app")
    assert _read(out / "ctx/hello.txt") == "hello from git\n"
    assert sorted(p.name for p in (out / "ctx").iterdir()) == ["Dockerfile", "hello.txt"]

    plain = builder.tmp / "plain"
    builder.build("-o", f"type=local,dest={plain}", f"{remotes.http.url}/ctx.git")
    assert _read(plain / "all/top.txt") == "not in the subdir\n"
    assert not (plain / "all/.git").exists()
    kept = builder.tmp / "kept"
    builder.build("-o", f"type=local,dest={kept}", "--build-arg",
                  "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1", f"{remotes.http.url}/ctx.git")
    assert (kept / "all/.git").is_dir()

    files = {"Dockerfile": "FROM scratch\nCOPY --from=src a.txt sub/b.txt /from-src/\n"}
    out2, _ = _export(builder, files, "--build-context",
                      f"src={remotes.daemon}/repo.git#v1", name="out2")
    assert _read(out2 / "from-src/a.txt") == "one\n"
    assert _read(out2 / "from-src/b.txt") == "bee\n"


def test_add_checksum_on_a_git_source_checks_the_commit(
        builder: Builder, remotes: Remotes) -> None:
    """ADD --checksum=<commit> on a git source: a commit (or prefix) the ref resolves
    to builds; another fails the build naming both."""
    url = f"{remotes.daemon}/repo.git#v1"
    out, _ = _export(builder, {"Dockerfile": (
        f"FROM scratch\nADD --checksum={remotes.first[:12]} {url} /ok\n")})
    assert _read(out / "ok/a.txt") == "one\n"

    _, proc = _export(builder, {"Dockerfile": (
        f"FROM scratch\nADD --checksum={remotes.head} {url} /bad\n")}, name="bad",
        check=False)
    assert proc.returncode != 0
    assert f"expected checksum to match {remotes.head}" in proc.stderr
    assert remotes.first in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def token_remote(remotes: Remotes) -> Iterator[HttpRemote]:
    header = "basic " + base64.b64encode(b"x-access-token:s3cret").decode()
    with smart_http(remotes.base, auth_header=header) as http:
        yield http


def test_git_auth_token_secret(builder: Builder, token_remote: HttpRemote) -> None:
    """A remote that needs credentials is reached with the GIT_AUTH_TOKEN secret (sent
    as BuildKit sends it), also in its GIT_AUTH_TOKEN.<host> form, or with the whole
    header in GIT_AUTH_HEADER; without one the build fails."""
    files = {"Dockerfile": f"FROM scratch\nADD {token_remote.url}/repo.git#v1 /r\n"}
    _, proc = _export(builder, files, check=False, name="none")
    assert proc.returncode != 0 and token_remote.refused > 0
    assert "Traceback" not in proc.stderr

    token = builder.tmp / "token"
    token.write_text("s3cret\n")
    give_to(token, builder.user)
    out, _ = _export(builder, files, "--secret", f"id=GIT_AUTH_TOKEN,src={token}",
                     name="plain")
    assert _read(out / "r/a.txt") == "one\n"

    host = token_remote.url.removeprefix("http://")
    out, _ = _export(builder, files, "--secret", f"id=GIT_AUTH_TOKEN.{host},src={token}",
                     "--no-cache", name="per-host")
    assert _read(out / "r/a.txt") == "one\n"

    header = builder.tmp / "header"
    header.write_text(token_remote.auth_header)
    give_to(header, builder.user)
    out, _ = _export(builder, files, "--secret", f"id=GIT_AUTH_HEADER,src={header}",
                     "--no-cache", name="by-header")
    assert _read(out / "r/a.txt") == "one\n"


def test_ssh_remote_gets_the_forwarded_agent(builder: Builder, sub_user: User) -> None:
    """`git@host:repo.git` is an ssh remote: git runs ssh with the --ssh default agent
    socket in SSH_AUTH_SOCK (no sshd here: an `ssh` first in PATH records what it was
    given, then fails); without --ssh the build says to forward one."""
    bin_dir = builder.tmp / "bin"
    bin_dir.mkdir()
    record = builder.tmp / "ssh-record"
    (bin_dir / "ssh").write_text(
        "#!/bin/sh\n"
        f"{{ echo \"args: $*\"; echo \"sock: $SSH_AUTH_SOCK\"; }} >> {record}\n"
        "echo 'fake ssh: no server' >&2\nexit 255\n")
    (bin_dir / "ssh").chmod(0o755)
    sock_path = builder.tmp / "agent.sock"
    agent = socket.socket(socket.AF_UNIX)
    agent.bind(str(sock_path))
    give_to(builder.tmp, sub_user)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    files = {"Dockerfile": "FROM scratch\nADD git@git.example.invalid:org/repo.git#main /r\n"}
    try:
        ctx = write_context(builder.tmp / "ctx", files, builder.user)
        proc, _ = builder.build("--ssh", f"default={sock_path}", ctx, check=False, env=env)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr
        recorded = record.read_text()
        assert "git@git.example.invalid" in recorded
        assert "git-upload-pack 'org/repo.git'" in recorded
        assert f"sock: {sock_path}" in recorded

        proc, _ = builder.build(ctx, check=False, env=env)
        assert proc.returncode != 0 and "--ssh default" in proc.stderr
    finally:
        agent.close()
        remove_tree(bin_dir)


def test_submodules_are_checked_out(builder: Builder, remotes: Remotes) -> None:
    """A repository's submodules come with it (BuildKit updates them recursively)."""
    repo = remotes.base / "super.git"
    make_repo(repo, {"top.txt": "top\n"})
    git(repo, "-c", "protocol.file.allow=never", "submodule", "add", "--quiet",
        f"{remotes.http.url}/repo.git", "mod")
    git(repo, "commit", "--quiet", "-m", "with a submodule")
    # a relative URL is read against the superproject's remote
    git(repo, "config", "-f", ".gitmodules", "submodule.mod.url", "../repo.git")
    git(repo, "commit", "--quiet", "-am", "relative submodule URL")
    out, _ = _export(builder, {"Dockerfile": (
        f"FROM scratch\nADD {remotes.http.url}/super.git#main /s\n")})
    assert _read(out / "s/top.txt") == "top\n"
    assert _read(out / "s/mod/a.txt") == "two\n"
    assert not (out / "s/.git").exists()


def test_a_hostile_repository_reads_nothing_of_the_builders_machine(
        builder: Builder, remotes: Remotes) -> None:
    """Symbolic links in the repository are copied as links (never followed to the
    builder's files); a subdirectory reached through a link is refused; a submodule
    naming a path on the builder's machine (file://) is not fetched."""
    private = remotes.base / "private.git"  # readable by the builder, not served to it
    make_repo(private, {"secret.txt": "do not copy\n"})
    repo = remotes.base / "hostile.git"
    make_repo(repo, {"sub/f.txt": "f\n"})
    (repo / "etc-link").symlink_to("/etc")
    (repo / "passwd-link").symlink_to("/etc/passwd")
    (repo / "sub-link").symlink_to("sub")
    commit(repo, {}, "links")
    url = f"{remotes.http.url}/hostile.git"
    out, _ = _export(builder, {"Dockerfile": f"FROM scratch\nADD {url}#main /h\n"})
    assert os.readlink(out / "h/etc-link") == "/etc"
    assert os.readlink(out / "h/passwd-link") == "/etc/passwd"

    _, proc = _export(builder, {"Dockerfile": f"FROM scratch\nADD {url}#main:sub-link /h\n"},
                      name="via-link", check=False)
    assert proc.returncode != 0 and "'sub-link' is not a directory" in proc.stderr

    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "--quiet",
        f"file://{private}", "stolen")
    git(repo, "commit", "--quiet", "-m", "a local submodule")
    _, proc = _export(builder, {"Dockerfile": f"FROM scratch\nADD {url}#main /h\n"},
                      name="file-submodule", check=False)
    assert proc.returncode != 0
    assert "transport 'file' not allowed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_copy_of_a_git_url_is_refused(builder: Builder, remotes: Remotes) -> None:
    """Only ADD reads git URLs: COPY of one fails with BuildKit's message."""
    _, proc = _export(builder, {"Dockerfile": (
        f"FROM scratch\nCOPY {remotes.http.url}/repo.git /r\n")}, check=False)
    assert proc.returncode != 0
    assert "source can't be a git ref for COPY" in proc.stderr


@pytest.mark.parametrize(("text", "remote", "ref", "subdir"), [
    ("https://example.com/foo.git", "https://example.com/foo.git", "", ""),
    ("https://example.com/foo.git#release/1.2", "https://example.com/foo.git",
     "release/1.2", ""),
    ("https://github.com/foo/bar.git#baz/qux:quux/quuz", "https://github.com/foo/bar.git",
     "baz/qux", "quux/quuz"),
    ("https://github.com/docker/docker.git#:myfolder", "https://github.com/docker/docker.git",
     "", "myfolder"),
    ("https://foo:bar@github.com/moby/buildkit.git",
     "https://foo:bar@github.com/moby/buildkit.git", "", ""),
    ("git://example.com/foo", "git://example.com/foo", "", ""),
    ("git@github.com:moby/buildkit", "git@github.com:moby/buildkit", "", ""),
    ("git@bitbucket.org:atlassianlabs/atlassian-docker.git#v1:a/../b",
     "git@bitbucket.org:atlassianlabs/atlassian-docker.git", "v1", "b"),
    ("ssh://git@example.com/repo.git#main", "ssh://git@example.com/repo.git", "main", ""),
    ("https://example.com/foo.git?tag=v1&subdir=docs", "https://example.com/foo.git",
     "refs/tags/v1", "docs"),
    ("https://example.com/foo.git?branch=dev", "https://example.com/foo.git",
     "refs/heads/dev", ""),
])
def test_git_urls_as_buildkit_reads_them(text: str, remote: str, ref: str,
                                         subdir: str) -> None:
    """What BuildKit's dfgitutil.ParseGitRef takes for a git URL (its git_ref_test.go
    cases): the remote git is given, the fragment's ref and cleaned subdirectory."""
    parsed = parse(text)
    assert parsed is not None
    assert (parsed.remote, parsed.ref, parsed.subdir) == (remote, ref, subdir)


@pytest.mark.parametrize("text", [
    "https://example.com/", "https://example.com/foo", "https://example.com/foo.git/",
    "https://example.com/foo.git.bar", "http://github.com/docker/docker.git:#branch",
    "custom.xyz/moby/buildkit.git", "./.git", ".git", "file:///srv/repo.git", "dir/sub"])
def test_not_git_urls(text: str) -> None:
    """An http(s) URL without the .git suffix stays a download; paths stay paths."""
    assert parse(text) is None


def test_git_url_query_conflicts_are_errors() -> None:
    with pytest.raises(UsageError, match="branch conflicts with tag"):
        parse("https://example.com/foo.git?tag=v1&branch=main")
    with pytest.raises(UsageError, match="ref conflicts"):
        parse("https://example.com/foo.git?ref=a#b")


def test_cache_du_counts_and_prune_all_removes_the_git_cache(
        builder: Builder, remotes: Remotes) -> None:
    """The git cache under the store is shown by `cache du` and removed by `cache prune
    --all`; a later build fetches again and still makes the same tree."""
    url = f"{remotes.http.url}/ctx.git#main"
    files = {"Dockerfile": f"FROM scratch\nADD {remotes.http.url}/repo.git#v1 /src\n"}
    out, _ = _export(builder, files, "--build-context", f"extra={url}")
    assert _read(out / "src/a.txt") == "one\n"
    git_dir = builder.root / "git"
    assert any(git_dir.iterdir())

    du = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "du", "--verbose"])
    assert du.returncode == 0, du.stderr
    assert "git source repository" in du.stdout, du.stdout

    pruned = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "prune", "--all"])
    assert pruned.returncode == 0, pruned.stderr
    assert [p.name for p in git_dir.glob("*") if p.name != "trees"] == []
    assert not any((git_dir / "trees").glob("*"))

    fetched = remotes.http.fetches.count("/repo.git")
    again, _ = _export(builder, {**files, "Dockerfile": files["Dockerfile"] + "LABEL a=b\n"},
                       name="again")
    assert _read(again / "src/a.txt") == "one\n"
    assert remotes.http.fetches.count("/repo.git") == fetched + 1


def test_a_git_build_asks_the_remote_once(builder: Builder, remotes: Remotes) -> None:
    """No rebuild memo can stand for a build that rests on a git ref, so the command
    does not build a second time to make one: one ref listing per build."""
    repo = remotes.base / "once.git"
    make_repo(repo, {"f.txt": "once\n"})
    files = {"Dockerfile": f"FROM scratch\nADD {remotes.http.url}/once.git#main /src\n"}
    ctx = write_context(builder.tmp / "ctx-once", files, builder.user)
    builder.build(ctx)
    assert remotes.http.listings.count("/once.git") == 2  # ls-remote, then the fetch
    assert remotes.http.fetches.count("/once.git") == 1
    proc, _ = builder.build(ctx)
    assert set(step_states(proc.stderr).values()) == {"CACHED"}
    assert remotes.http.listings.count("/once.git") == 3  # ls-remote only
    assert remotes.http.fetches.count("/once.git") == 1
