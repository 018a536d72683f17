"""`ocibuild debug ...`: look inside the frontend.

- `ocibuild debug ast [-f FILE]`: parse a Dockerfile and print BuildKit's AST
  dump (one `(instruction ...)` per line). `-f -` reads standard input.
"""

from __future__ import annotations

import sys

import click


@click.group()
def debug() -> None:
    """Inspect how ocibuild understands its inputs."""


@debug.command("ast")
@click.option("-f", "--file", "path", default="Dockerfile", show_default=True,
              help="The Dockerfile to parse ('-' for standard input).")
def ast_cmd(path: str) -> None:
    """Print a Dockerfile's syntax tree in BuildKit's dump format."""
    from ocibuild.errors import UsageError
    from ocibuild.frontend.dockerfile.dump import dump_ast
    from ocibuild.frontend.dockerfile.parser import parse

    if path == "-":
        data = sys.stdin.buffer.read()
        name = "Dockerfile"
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        name = path
    click.echo(dump_ast(parse(data, name)), nl=False)
