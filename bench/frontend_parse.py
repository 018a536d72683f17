"""Time to parse, type-check and expand a 5,000-instruction Dockerfile (target < 0.2 s).

Usage: python bench/frontend_parse.py
Prints the time of each phase (best of 5) and the total against the target.
"""

from __future__ import annotations

import time

from ocibuild.frontend.dockerfile.instructions import (
    ArgInstruction,
    CopyInstruction,
    EnvInstruction,
    RunInstruction,
    WorkdirInstruction,
    parse_dockerfile,
)
from ocibuild.frontend.dockerfile.shell import ShellLex

TARGET = 0.2


def make_dockerfile(count: int) -> str:
    lines = ["ARG BASE=alpine:3.20", "FROM ${BASE} AS build"]
    body = [
        "ENV APP_HOME=/srv/$NAME HOME=/root",
        "RUN --mount=type=cache,target=/var/cache/apk apk add --no-cache curl \\\n    && echo ok",
        "COPY --chown=1000:1000 src/${NAME:-app}/ /srv/app/",
        "WORKDIR /srv/${NAME:-app}",
        "ARG VERSION=1.0",
        'LABEL org.opencontainers.image.version="${VERSION}"',
        "RUN <<EOF\nset -e\necho building $VERSION\nEOF",
        'CMD ["/srv/app/run", "--port", "8080"]',
    ]
    i = 0
    while len(lines) < count:
        lines.append(body[i % len(body)])
        i += 1
    return "\n".join(lines) + "\n"


def expand_all(df, lex: ShellLex) -> int:  # type: ignore[no-untyped-def]
    env: dict[str, str] = {"NAME": "svc"}
    words = 0
    for stage in df.stages:
        for inst in stage.instructions:
            if isinstance(inst, EnvInstruction):
                for pair in inst.pairs:
                    env[pair.key] = lex.expand_word(pair.value, env)
                    words += 1
            elif isinstance(inst, ArgInstruction):
                for arg in inst.args:
                    env.setdefault(arg.key, lex.expand_word(arg.default or "", env))
                    words += 1
            elif isinstance(inst, CopyInstruction):
                for src in (*inst.sources, inst.dest, inst.chown or ""):
                    lex.expand_words(src, env)
                    words += 1
            elif isinstance(inst, WorkdirInstruction):
                lex.expand_word(inst.path, env)
                words += 1
            elif isinstance(inst, RunInstruction):
                inst.expand_mounts(lambda w: lex.expand_word(w, env))
                words += 1
    return words


def best_of(n: int, fn):  # type: ignore[no-untyped-def]
    best = float("inf")
    result = None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    text = make_dockerfile(5000)
    lex = ShellLex()
    parse_time, df = best_of(5, lambda: parse_dockerfile(text))
    instructions = sum(len(s.instructions) + 1 for s in df.stages) + len(df.meta_args)
    expand_time, words = best_of(5, lambda: expand_all(df, lex))
    total = parse_time + expand_time
    print(f"instructions: {instructions}, lines: {text.count(chr(10))}, words expanded: {words}")
    print(f"parse + type-check: {parse_time * 1000:.1f} ms")
    print(f"expand: {expand_time * 1000:.1f} ms")
    ratio = total / TARGET
    print(f"total: {total * 1000:.1f} ms (target {TARGET * 1000:.0f} ms, ratio {ratio:.2f})")


if __name__ == "__main__":
    main()
