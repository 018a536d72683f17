""".dockerignore semantics, case by case, as Docker (moby/patternmatcher) answers them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocibuild.dockerignore import (
    DockerignoreError,
    IgnoreMatcher,
    find_ignore_file,
    load_matcher,
    read_patterns,
)

# (ignore file text, path relative to the context, does Docker leave it out?)
CASES = [
    ("*.pyc", "a.pyc", True),
    ("*.pyc", "sub/a.pyc", False),  # anchored at the root (gitignore-style matchers say True)
    ("**/*.pyc", "sub/deep/a.pyc", True),
    ("**/*.pyc", "a.pyc", True),
    ("*.log", "logs/app.log", False),  # idem
    ("node_modules", "node_modules/x/y.js", True),
    ("node_modules", "src/node_modules/x", False),  # idem
    ("/build", "build/out", True),
    ("./dist/", "dist/app.js", True),
    ("dist/", "dist", True),
    ("foo/../bar", "bar/x", True),
    ("  spaced.txt  ", "spaced.txt", True),
    ("# comment", "# comment", False),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "CHANGES.md", True),
    ("!README.md\n*.md", "README.md", True),  # the last matching pattern wins
    ("*.txt\n!important.txt\nimportant*", "important.txt", True),
    ("docs\n!docs/keep.txt", "docs/keep.txt", False),
    ("docs\n!docs/keep.txt", "docs/other.txt", True),
    ("*\n!keep", "keep/inner/file", False),
    ("*\n!keep", "other/file", True),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),  # ? never matches /
    ("a*", "a/b", True),  # the directory a matches, so all under it
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/sub/temp", False),
    ("*/*/temp*", "a/b/temp.txt", True),
    ("[a-c].txt", "b.txt", True),
    ("[a-c].txt", "d.txt", False),
    ("[^a].txt", "a.txt", False),
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    ("**", "anything/at/all", True),
    ("dir/**/file", "dir/file", True),
    ("dir/**/file", "dir/a/b/file", True),
    ("dir/**", "dir/x/y", True),
    (".git", ".git/HEAD", True),
    (".git", "sub/.git/HEAD", False),
    ("**/.git", "sub/.git/HEAD", True),
    ("a/b", "a", False),
    ("*", "file", True),
    ("*.go", ".", False),  # the context itself is never excluded
]


@pytest.mark.parametrize(("text", "path", "ignored"), CASES,
                         ids=[f"{c[0]!r}-{c[1]}" for c in CASES])
def test_docker_semantics(text: str, path: str, ignored: bool) -> None:
    assert IgnoreMatcher(read_patterns(text)).matches(path) is ignored


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 30


def test_patterns_are_cleaned_and_comments_dropped() -> None:
    text = "\ufeff# top\n/abs/path\n./rel/\n! ./neg/\n\n   \n#c\nx//y\n"
    assert read_patterns(text) == ["abs/path", "rel", "!neg", "x/y"]


def test_exclusions_flag() -> None:
    assert IgnoreMatcher(["a", "!b"]).has_exclusions
    assert not IgnoreMatcher(["a"]).has_exclusions


@pytest.mark.parametrize("bad", ["!", "[a-", "abc[", "x\\", "[]a]"])
def test_malformed_patterns_are_rejected(bad: str) -> None:
    with pytest.raises(DockerignoreError):
        IgnoreMatcher([bad])


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("*.txt\n")
    sub = tmp_path / "build"
    sub.mkdir()
    dockerfile = sub / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    assert find_ignore_file(tmp_path, dockerfile) == tmp_path / ".dockerignore"
    assert load_matcher(tmp_path, dockerfile).matches("a.txt")
    (sub / "app.Dockerfile.dockerignore").write_text("*.md\n")
    assert find_ignore_file(tmp_path, dockerfile) == sub / "app.Dockerfile.dockerignore"
    matcher = load_matcher(tmp_path, dockerfile)
    assert matcher.matches("a.md") and not matcher.matches("a.txt")


def test_no_ignore_file_ignores_nothing(tmp_path: Path) -> None:
    assert find_ignore_file(tmp_path) is None
    assert not load_matcher(tmp_path).matches("anything")
