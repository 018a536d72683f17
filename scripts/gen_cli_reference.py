#!/usr/bin/env python3
"""Write docs/cli.md: every `ocibuild` command's usage, help and options, read from the
click command tree, and how `ocibuild build` answers each `docker buildx build` flag.

    .venv/bin/python scripts/gen_cli_reference.py          # rewrite docs/cli.md
    .venv/bin/python scripts/gen_cli_reference.py --check  # exit 1 if it is stale

The buildx table is data below (BUILDX_FLAGS, from buildx's docs/reference/
buildx_build.md); generating checks it against the real `build` command: a flag marked
supported or accepted must exist there, and a refused one must not.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ocibuild.cli.app import cli  # noqa: E402

OUTPUT = REPO / "docs" / "cli.md"
SUPPORTED, NO_OP, REFUSED = "supported", "accepted (no-op)", "refused"


@dataclass(frozen=True)
class BuildxFlag:
    names: tuple[str, ...]  # as buildx spells them; the long name is ocibuild's too
    status: str
    note: str


BUILDX_FLAGS = (
    BuildxFlag(("--add-host",), SUPPORTED, "`HOST:IP` lines in the `/etc/hosts` of `RUN` "
               "steps."),
    BuildxFlag(("--allow",), SUPPORTED, "`network.host` and `security.insecure`; `device` "
               "and `buildx.local.delete` are an error (no devices are passed to steps; "
               "outputs never delete files)."),
    BuildxFlag(("--annotation",), SUPPORTED, "`[TYPE:]KEY=VALUE` on the manifest (default) "
               "or its descriptor; `index` types need a multi-platform build."),
    BuildxFlag(("--attest",), SUPPORTED, "`type=provenance` (`mode=min|max`, `builder-id=`) "
               "and `type=sbom` (made in Python: dpkg, apk and Python packages; "
               "`generator=` is ignored); other types are an error. See "
               "[supply-chain.md](supply-chain.md)."),
    BuildxFlag(("--build-arg",), SUPPORTED, ""),
    BuildxFlag(("--build-context",), SUPPORTED, "A directory, `docker-image://`, "
               "`oci-layout://` or `docker-archive://`; git and https URLs and bake's "
               "`target:` are an error. Names are normalized as buildx does "
               "(`docker.io/library/alpine:latest` names `alpine`, which `FROM alpine:latest` "
               "finds)."),
    BuildxFlag(("--builder",), REFUSED, "There are no builder instances: the `ocibuild` "
               "process is the builder."),
    BuildxFlag(("--cache-from",), SUPPORTED, "`type=registry,ref=...` and "
               "`type=local,src=...`; `gha`, `s3` and `azblob` are an error."),
    BuildxFlag(("--cache-to",), SUPPORTED, "`type=registry` and `type=local`, `mode=min|max`; "
               "`inline`, `gha`, `s3` and `azblob` are an error."),
    BuildxFlag(("--call",), REFUSED, "`check`, `outline` and `targets` are not implemented; "
               "`ocibuild debug instructions` lists stages."),
    BuildxFlag(("--cgroup-parent",), REFUSED, "ocibuild manages no cgroups (a rootless "
               "process may not have a delegated cgroup)."),
    BuildxFlag(("--check",), REFUSED, "Build checks (lint rules) are not implemented."),
    BuildxFlag(("-D", "--debug"), REFUSED, "Not a `build` flag: `ocibuild --debug build ...` "
               "(a global option) shows tracebacks."),
    BuildxFlag(("-f", "--file"), SUPPORTED, "`-f -` reads the Dockerfile from standard input."),
    BuildxFlag(("--iidfile",), SUPPORTED, ""),
    BuildxFlag(("--label",), SUPPORTED, ""),
    BuildxFlag(("--load",), SUPPORTED, "`docker load` into the daemon at `DOCKER_HOST` (or "
               "the default socket); the local store is written as well."),
    BuildxFlag(("--metadata-file",), SUPPORTED, ""),
    BuildxFlag(("--network",), SUPPORTED, "`default`, `none`, `host` (with `--allow "
               "network.host`)."),
    BuildxFlag(("--no-cache",), SUPPORTED, ""),
    BuildxFlag(("--no-cache-filter",), SUPPORTED, ""),
    BuildxFlag(("-o", "--output"), SUPPORTED, "Types `oci`, `docker`, `local`, `image`, "
               "`registry` (and `store`); the `tar` type is an error, as is an unknown key."),
    BuildxFlag(("--platform",), SUPPORTED, "One or several (comma-separated): several "
               "make an image index ([multi-platform.md](multi-platform.md)); `RUN` of "
               "another architecture runs through a binfmt_misc handler (QEMU)."),
    BuildxFlag(("--policy",), REFUSED, "Source policies are not implemented."),
    BuildxFlag(("--progress",), SUPPORTED, "`auto`, `plain`, `tty`, `rawjson` (or `json`), "
               "`quiet` (prints only the image ID, as `-q`); buildx's `none` is spelled "
               "`quiet`; rawjson logs carry stream 1 (stdout) or 2 (stderr)."),
    BuildxFlag(("--provenance",), SUPPORTED, "SLSA provenance v1 as BuildKit writes it; "
               "unlike buildx, none is added unless asked for."),
    BuildxFlag(("--pull",), SUPPORTED, ""),
    BuildxFlag(("--push",), SUPPORTED, "Pushes to every `-t` name."),
    BuildxFlag(("-q", "--quiet"), SUPPORTED, ""),
    BuildxFlag(("--resource",), REFUSED, "ocibuild sets no memory or CPU limits on steps "
               "(no cgroups)."),
    BuildxFlag(("--sbom",), SUPPORTED, "An SPDX 2.3 SBOM made without a scanner image."),
    BuildxFlag(("--secret",), SUPPORTED, "`id=...,src=FILE` or `id=...,env=VAR`."),
    BuildxFlag(("--shm-size",), SUPPORTED, ""),
    BuildxFlag(("--ssh",), SUPPORTED, "`default` or `ID=SOCKET`."),
    BuildxFlag(("-t", "--tag"), SUPPORTED, ""),
    BuildxFlag(("--target",), SUPPORTED, ""),
    BuildxFlag(("--ulimit",), SUPPORTED, "`TYPE=SOFT[:HARD]`, repeatable."),
)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _walk(command: click.Command, path: list[str],
          parent: click.Context | None) -> list[tuple[list[str], click.Command, click.Context]]:
    ctx = command.context_class(command, info_name=path[-1], parent=parent,
                                **command.context_settings)
    found = [(path, command, ctx)]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                found += _walk(sub, [*path, name], ctx)
    return found


def _command_section(path: list[str], command: click.Command, ctx: click.Context) -> str:
    heading = "#" * min(len(path) + 1, 4)
    usage = " ".join([*path, *command.collect_usage_pieces(ctx)])
    lines = [f"{heading} `{' '.join(path)}`", "", "```text", usage, "```", ""]
    if command.help:
        lines += [command.help.strip(), ""]
    rows = [record for param in command.get_params(ctx) if isinstance(param, click.Option)
            and (record := param.get_help_record(ctx)) is not None]
    if rows:
        lines += ["| Option | Description |", "|---|---|"]
        lines += [f"| `{_cell(opts)}` | {_cell(help_text)} |" for opts, help_text in rows]
        lines.append("")
    if isinstance(command, click.Group):
        names = command.list_commands(ctx)
        lines += ["Commands: " + ", ".join(f"`{name}`" for name in names) + ".", ""]
    return "\n".join(lines)


def _check_buildx_table(build: click.Command) -> None:
    ours = {opt for param in build.params for opt in (*param.opts, *param.secondary_opts)}
    for flag in BUILDX_FLAGS:
        present = [name for name in flag.names if name in ours]
        if flag.status == REFUSED and present:
            raise SystemExit(f"{flag.names}: marked refused, but `ocibuild build` has it")
        if flag.status != REFUSED and len(present) != len(flag.names):
            raise SystemExit(f"{flag.names}: marked {flag.status}, but `ocibuild build` "
                             f"lacks {sorted(set(flag.names) - ours)}")


def _buildx_section(build: click.Command) -> str:
    _check_buildx_table(build)
    buildx = {opt for flag in BUILDX_FLAGS for opt in flag.names}
    extra = sorted(opt for param in build.params for opt in param.opts
                   if opt.startswith("--") and opt not in buildx and opt != "--help")
    lines = [
        "## `docker buildx build` flags",
        "",
        "Every flag of `docker buildx build` (buildx's reference, "
        "`docs/reference/buildx_build.md`) and what `ocibuild build` does with it: "
        f"*{SUPPORTED}* (same meaning), *{NO_OP}* (taken so that CI scripts written for "
        f"buildx run, with no effect) or *{REFUSED}* (`No such option`, or an error saying "
        "why). A refused flag fails the build rather than being ignored.",
        "",
        "| buildx flag | ocibuild | Notes |",
        "|---|---|---|",
    ]
    for flag in BUILDX_FLAGS:
        names = ", ".join(f"`{name}`" for name in flag.names)
        lines.append(f"| {names} | {flag.status} | {_cell(flag.note)} |")
    lines += ["", "Flags of `ocibuild build` that buildx does not have: "
              + ", ".join(f"`{opt}`" for opt in extra) + ". `--isolation` is not "
              "`docker build`'s Windows option: it chooses how `RUN` steps are isolated "
              "([rootless.md](rootless.md)).", ""]
    return "\n".join(lines)


def render() -> str:
    commands = _walk(cli, ["ocibuild"], None)
    build = next(command for path, command, _ in commands if path == ["ocibuild", "build"])
    parts = [
        "# Command-line reference",
        "",
        "<!-- Generated by scripts/gen_cli_reference.py from the click commands: do not edit."
        " -->",
        "",
        "Generated from the commands themselves (`ocibuild COMMAND --help` prints the same). "
        "After changing a command, run `.venv/bin/python scripts/gen_cli_reference.py`; "
        "`tests/docs/test_cli_reference.py` fails while this page is out of date.",
        "",
        "Exit status: `0` done, `1` an error, `2` bad command-line input, `130`/`143` "
        "interrupted (SIGINT/SIGTERM).",
        "",
        _buildx_section(build),
    ]
    parts += [_command_section(path, command, ctx) for path, command, ctx in commands]
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is out of date: run .venv/bin/python scripts/gen_cli_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
