"""The `ocibuild` command line (click).

Subcommands live in their own modules and are imported only when used, which
keeps start-up fast. Register a command by adding it to COMMANDS.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ocibuild import __version__
from ocibuild.errors import (
    DiskFullError,
    OcibuildError,
    is_disk_full,
    os_error,
    printable,
    reason,
    terminal_text,
)

if TYPE_CHECKING:
    from ocibuild.rebuild_memo import Invocation

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "images": "ocibuild.cli.manage_cmds:images_cmd",
    "cache": "ocibuild.cli.store_cmds:cache_group",
    "build": "ocibuild.cli.build_cmd:build_cmd",
    "import": "ocibuild.cli.image_cmds:import_cmd",
    "inspect": "ocibuild.cli.image_cmds:inspect_cmd",
    "pull": "ocibuild.cli.registry_cmds:pull_cmd",
    "push": "ocibuild.cli.registry_cmds:push_cmd",
    "login": "ocibuild.cli.registry_cmds:login_cmd",
    "logout": "ocibuild.cli.registry_cmds:logout_cmd",
    "debug": "ocibuild.cli.debug_cmds:debug",
    "rootfs": "ocibuild.cli.rootfs_cmds:rootfs_group",
    "tag": "ocibuild.cli.manage_cmds:tag_cmd",
    "rmi": "ocibuild.cli.manage_cmds:rmi_cmd",
    "save": "ocibuild.cli.manage_cmds:save_cmd",
    "load": "ocibuild.cli.manage_cmds:load_cmd",
    "copy": "ocibuild.cli.manage_cmds:copy_cmd",
    "version": "ocibuild.cli.info_cmds:version_cmd",
    "info": "ocibuild.cli.info_cmds:info_cmd",
    "key": "ocibuild.cli.sign_cmds:key_group",
    "sign": "ocibuild.cli.sign_cmds:sign_cmd",
    "verify": "ocibuild.cli.sign_cmds:verify_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ocibuild")
@click.option("--debug", is_flag=True, help="Show tracebacks and internal detail.")
@click.option(
    "--root",
    "root",
    envvar="OCIBUILD_ROOT",
    type=click.Path(file_okay=False),
    help="Store and cache directory (default $XDG_DATA_HOME/ocibuild).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, root: str | None) -> None:
    """Build OCI images without a daemon and without root."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["root"] = root


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("OCIBUILD_DEBUG") == "1"


def _environment_error(exc: Exception) -> OcibuildError:
    """An OSError or a database error no command turned into a message, as one line: the
    path and the reason (a full disk says so)."""
    if isinstance(exc, OSError):
        return os_error(exc, "cannot use") if exc.filename else \
            OcibuildError(reason(exc))
    if is_disk_full(exc):
        return DiskFullError(f"the cache database: {exc}")
    return OcibuildError(f"the cache database: {exc}")


def run(args: list[str], rebuild: Invocation | None = None) -> Any:
    """Run the command line `args`; `rebuild` is the build invocation the rebuild memo
    understood but could not answer (the build then writes the memo)."""
    try:
        try:
            return cli.main(args=args, prog_name="ocibuild", standalone_mode=False,
                            obj={"rebuild": rebuild})
        except Exception as exc:
            from ocibuild import interrupt

            cause = interrupt.behind(exc)
            if cause is None or _debug_requested(args):
                raise
            raise cause from None  # reported as the interrupt it followed from
    except click.exceptions.Abort as exc:  # click's form of a KeyboardInterrupt
        from ocibuild import interrupt

        cause = exc.__cause__ if isinstance(exc.__cause__, KeyboardInterrupt) \
            else KeyboardInterrupt()
        interrupt.exiting(interrupt.exit_status(cause))
        click.echo(interrupt.message(cause), err=True)
        sys.exit(interrupt.exit_status(cause))
    except click.ClickException as exc:
        exc.message = printable(exc.message)  # it may quote a value as given
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OcibuildError as exc:
        if _debug_requested(args):
            raise
        click.echo(terminal_text(exc.render()), err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # an OSError or database error no command expected: a message
        if _debug_requested(args) or not (isinstance(exc, OSError)
                                          or type(exc).__module__ == "sqlite3"):
            raise
        error = _environment_error(exc)
        click.echo(terminal_text(error.render()), err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt as exc:
        if _debug_requested(args):
            raise
        from ocibuild import interrupt

        interrupt.exiting(interrupt.exit_status(exc))
        click.echo(interrupt.message(exc), err=True)
        sys.exit(interrupt.exit_status(exc))
