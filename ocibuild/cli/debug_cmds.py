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


@debug.command("instructions")
@click.option("-f", "--file", "path", default="Dockerfile", show_default=True,
              help="The Dockerfile to check ('-' for standard input).")
def instructions_cmd(path: str) -> None:
    """Type-check a Dockerfile and print its stages and instructions."""
    import dataclasses

    from ocibuild.errors import UsageError
    from ocibuild.frontend.dockerfile.instructions import parse_dockerfile

    if path == "-":
        data, name = sys.stdin.buffer.read(), "Dockerfile"
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        name = path
    df = parse_dockerfile(data, name)
    skip = {"name", "original", "location", "flags"}

    def show(inst: object, indent: str) -> None:
        loc = inst.location  # type: ignore[attr-defined]
        fields = {
            f.name: getattr(inst, f.name)
            for f in dataclasses.fields(inst)  # type: ignore[arg-type]
            if f.name not in skip
        }
        body = " ".join(f"{k}={v!r}" for k, v in fields.items())
        name = inst.name  # type: ignore[attr-defined]
        click.echo(f"{indent}{loc.start_line}-{loc.end_line} {name} {body}")

    for arg in df.meta_args:
        show(arg, "")
    for stage in df.stages:
        click.echo(f"stage {stage.index}" + (f" ({stage.name})" if stage.name else ""))
        show(stage.from_, "  ")
        for inst in stage.instructions:
            show(inst, "  ")
