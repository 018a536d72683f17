"""A click command that takes its short options (-t, -f) as such at once.

click tries every option argument as a long option first. A short one fails that
match, and the failure loads difflib and ranks every long option of the command
against it for a "did you mean" it then throws away (~2 ms of each build command's
start). Here each short option is also known to that first match. An attached value
then reads as Docker's command line reads it: `-t=name` tags `name` (click alone read
`=name`); `-tname` is still matched as a short option, as before."""

from __future__ import annotations

from typing import Any

import click


class ShortOptionsCommand(click.Command):
    def make_parser(self, ctx: click.Context) -> Any:  # click's parser class is private
        parser = super().make_parser(ctx)
        short, long = getattr(parser, "_short_opt", None), getattr(parser, "_long_opt", None)
        if isinstance(short, dict) and isinstance(long, dict):  # else click changed: as is
            for name, option in short.items():
                long.setdefault(name, option)
        return parser
