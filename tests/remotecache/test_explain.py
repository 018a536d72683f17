"""--explain-cache says, for each step that missed, what changed against the closest
cached record."""

from __future__ import annotations

from tests.remotecache.conftest import Machine, write_files


def _explanations(log: str) -> str:
    return "\n".join(line for line in log.splitlines()
                     if "cache miss" in line or line.startswith("  "))


def test_explain_names_the_edited_file_then_the_changed_build_arg(
        machines: tuple[Machine, Machine]) -> None:
    a, _ = machines
    a.build()
    write_files(a.context, {"src/b.txt": "beta, edited\n"}, a.builder.user)
    log, states = a.build("--explain-cache")
    assert states["[builder 2/4] COPY src/ /src/"] == "DONE"
    text = _explanations(log)
    assert "[builder 2/4] COPY src/ /src/: cache miss" in text, log
    assert "file changed: src/b.txt" in text
    assert "src/a.txt" not in text  # unchanged files are not named
    assert "input changed: [builder 2/4] COPY src/ /src/" in text  # the RUN after it

    log, states = a.build("--explain-cache", "--build-arg", "VERSION=2")
    assert states["[builder 2/4] COPY src/ /src/"] == "CACHED"
    text = _explanations(log)
    assert "build-arg/env VERSION: '1' -> '2'" in text, log
    assert "file changed" not in text


def test_explain_compares_with_records_of_a_remote_cache(
        machines: tuple[Machine, Machine]) -> None:
    a, b = machines
    cache_dir = a.builder.tmp / "cache"
    a.build("--cache-to", f"type=local,dest={cache_dir},mode=max")
    write_files(b.context, {"app.conf": "setting=3\n"}, b.builder.user)
    log, _ = b.build("--cache-from", f"type=local,src={cache_dir}", "--explain-cache")
    text = _explanations(log)
    assert "[stage-1 2/4] COPY app.conf /etc/app.conf: cache miss" in text, log
    assert "file changed: app.conf" in text
    assert "[builder" not in text  # the builder stage hit the cache
