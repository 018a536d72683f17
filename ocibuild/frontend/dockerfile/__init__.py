"""The Dockerfile frontend, layer by layer (each module documents its API):

- `parser`: text -> AST (`parse`), directives, continuations, heredocs, JSON form.
- `shell`: BuildKit word expansion and splitting (`ShellLex`).
- `instructions`: AST -> typed instructions and stages (`parse_dockerfile`).
- `mounts`: `RUN --mount` specs; `flags`: flag validation.
- `dump`: BuildKit's AST dump format; `errors`: `DockerfileError`.
"""

from ocibuild.frontend.dockerfile.errors import DockerfileError, ShellExpansionError
from ocibuild.frontend.dockerfile.instructions import Dockerfile, parse_dockerfile
from ocibuild.frontend.dockerfile.parser import parse
from ocibuild.frontend.dockerfile.shell import ShellLex

__all__ = [
    "Dockerfile",
    "DockerfileError",
    "ShellExpansionError",
    "ShellLex",
    "parse",
    "parse_dockerfile",
]
