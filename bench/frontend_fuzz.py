"""Long fuzz run of the Dockerfile parser: only DockerfileError may escape.

Usage: python bench/frontend_fuzz.py [N]   (default 100000 inputs)
Prints how many inputs were tried, how many were rejected with DockerfileError,
and the time taken. Exits 1 on any other exception (and prints the input).
"""

from __future__ import annotations

import random
import sys
import time
import traceback

from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.instructions import parse_dockerfile

TOKENS = [
    "FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "ONBUILD", "HEALTHCHECK", "CMD",
    "SHELL", "EXPOSE", "VOLUME", "USER", "WORKDIR", "ENTRYPOINT", "STOPSIGNAL", "MAINTAINER",
    "a", "x=1", "$A", "${A:-b}", "${A/x/y}", "--mount=type=cache,target=/c", "--from=b",
    "--chown=1:2", "--link", "--x", "--", "<<EOF", "<<-EOF", "<<'EOF'", "3<<X", "EOF", "X",
    "[", "]", '"', "'", ",", "\\", "`", "# escape=`", "# syntax=x", "#", "=", "AS", "NONE",
    " ", " ", " ", "\t", "\n", "\n", "\n", "\r\n", "\x00", "\x85", "é", "\u3000", "{", "}",
]


def random_input(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(0, 80)))
    text = "".join(rng.choice(TOKENS) for _ in range(rng.randrange(0, 60)))
    # half start with a valid stage so later instructions get type-checked too
    return "FROM a\n" + text if rng.random() < 0.5 else text


def main() -> int:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = random.Random(20240821)
    rejected = 0
    start = time.perf_counter()
    for _ in range(total):
        text = random_input(rng)
        try:
            parse_dockerfile(text)
        except DockerfileError:
            rejected += 1
        except Exception:
            traceback.print_exc()
            print(f"input: {text!r}")
            return 1
    elapsed = time.perf_counter() - start
    print(f"inputs tried: {total}")
    print(f"rejected with DockerfileError: {rejected}")
    print("other exceptions: 0")
    print(f"time: {elapsed:.1f} s ({total / elapsed:.0f} inputs/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
