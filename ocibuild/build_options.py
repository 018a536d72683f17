"""`BuildOptions`: everything `build()` takes besides the context, as one typed value.

The CLI fills one from its flags; the Python API takes one (or the same fields as
keyword arguments). Making one checks only the shapes a type checker would (a list
is not a string, `jobs` is a positive number); the values are checked when the build
starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TypedDict

TYPE_CHECKING = False  # not typing's: `import ocibuild` must stay light
if TYPE_CHECKING:
    from typing import Any

    from ocibuild.progress.events import Sink
    from ocibuild.registry.options import RegistryOptions

__all__ = ["BuildFields", "BuildOptions"]

CONTEXT_MODES = ("keep", "git")  # the values of `context_modes` (--context-modes)


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """How to build: the `ocibuild build` flags as fields (all optional).

    Inputs
        dockerfile: the Dockerfile (default CONTEXT/Dockerfile; a relative path that
            does not exist is taken inside the context). `target`: the stage to build.
        frontend: the frontend that reads it (`--frontend`): `dockerfile`, `python`
            (a build.py defining `build(ctx)`) or an installed one; default: its
            `# syntax=` directive, else `dockerfile`.
        build_args: values for ARG (`--build-arg`). `labels`: image labels.
        build_contexts: extra named contexts, `NAME=docker-image://REF`,
            `NAME=oci-layout://PATH[:TAG]`, `NAME=docker-archive://FILE`, `NAME=DIR`
            or `NAME=<git URL>`.
        context_modes: `keep` (the default: context files' modes as they are on
            disk, as BuildKit) or `git`: files read from the context and from directory
            build contexts enter cache keys and the image as git records them
            (regular files 0644, or 0755 when any execute bit is set; directories
            0755), so clones made under different umasks share the cache.
        platform: the target platform, `os/arch[/variant]` (default: this host's);
            several (comma-separated, or a sequence) build one image each, written
            as one image index (docs/multi-platform.md).
        secrets: `id=NAME,src=FILE` or `id=NAME,env=VAR`, for RUN --mount=type=secret.
        ssh: `default` (forwards $SSH_AUTH_SOCK) or `ID=SOCKET`, for RUN
            --mount=type=ssh.

    Outputs
        tags: names for the image in the local store (and for `push`).
        outputs: `-o` values, e.g. `type=oci,dest=out.tar` or `type=local,dest=DIR`
            (default: the local store).
        push: push to every tag. `load`: also load into the docker daemon at
            $DOCKER_HOST.
        compression: `gzip`, `zstd` or `uncompressed`, for new layers.
        annotations: `[TYPE:]KEY=VALUE` annotations of the image.
        attest: `--attest` values (`type=provenance,mode=max`, `type=sbom`, ...).
        sign_key: sign every pushed name with this private key (cosign's format, the
            passphrase from $OCIBUILD_KEY_PASSWORD or $COSIGN_PASSWORD, else asked).
        iidfile: write the image ID here. metadata_file: write buildx-style build
            metadata (JSON) here.
        source_date_epoch: the time of new layers and history (seconds since the
            epoch; default $SOURCE_DATE_EPOCH or the build arg of that name).

    Cache
        root: the store (default $OCIBUILD_ROOT, else ~/.local/share/ocibuild).
        no_cache: run every step again. no_cache_filter: stages whose steps run again.
        cache_from / cache_to: `type=registry,ref=REF[,mode=max]` or
            `type=local,src=DIR` / `type=local,dest=DIR`.
        explain_cache: the report's `cache_explanations` say why steps missed.
        pull: ask the registry for every base image even when the store has one.

    Running steps
        jobs: steps run at once (default: the number of CPUs).
        snapshotter: `auto`, `overlay` or `native`.
        isolation: `userns` (user namespaces), `chroot` (root only, no user
            namespace) or `auto` (userns, else chroot as root, with a warning).
        network: `default`, `none` or `host` (needs `allow=["network.host"]`): the
            network of every RUN that does not choose one.
        allow: entitlements, `network.host` and `security.insecure`.
        add_hosts: `HOST:IP` lines for /etc/hosts. shm_size: the size of /dev/shm,
            e.g. `128m`. ulimits: `TYPE=SOFT[:HARD]`, e.g. `nofile=1024:2048`.

    Connections and reporting
        registry: how registries are reached (`RegistryOptions`: insecure hosts, CA
            files, an auth file, timeouts).
        progress: a callback called with each `ProgressEvent` of the build, from
            several threads (default: none; the CLI draws the progress display).
    """

    dockerfile: str | os.PathLike[str] | None = None
    tags: Sequence[str] = ()
    target: str | None = None
    build_args: Mapping[str, str] | None = None
    outputs: Sequence[str] = ()
    root: str | os.PathLike[str] | None = None
    jobs: int | None = None
    no_cache: bool = False
    no_cache_filter: Sequence[str] = ()
    secrets: Sequence[str] = ()
    ssh: Sequence[str] = ()
    labels: Mapping[str, str] | None = None
    platform: str | Sequence[str] | None = None
    snapshotter: str = "auto"
    progress: Sink | None = None
    iidfile: str | os.PathLike[str] | None = None
    metadata_file: str | os.PathLike[str] | None = None
    source_date_epoch: int | None = None
    compression: str = "gzip"
    cache_from: Sequence[str] = ()
    cache_to: Sequence[str] = ()
    explain_cache: bool = False
    build_contexts: Sequence[str] = ()
    context_modes: str = "keep"
    push: bool = False
    pull: bool = False
    registry: RegistryOptions | None = None
    allow: Sequence[str] = ()
    network: str = "default"
    isolation: str = "auto"
    add_hosts: Sequence[str] = ()
    annotations: Sequence[str] = ()
    shm_size: str | None = None
    ulimits: Sequence[str] = ()
    attest: Sequence[str] = ()
    load: bool = False
    frontend: str | None = None
    sign_key: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        from ocibuild.errors import UsageError

        # a lone string where a list belongs would be read one character at a time
        for f in fields(self):
            if f.type.startswith("Sequence") and isinstance(getattr(self, f.name), str):
                raise UsageError(f"BuildOptions.{f.name}: expected a list of strings, "
                                 f"not the string {getattr(self, f.name)!r}")
        for name in ("jobs", "source_date_epoch"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or (name == "jobs" and value < 1)):
                raise UsageError(f"BuildOptions.{name}: expected "
                                 f"{'a number above 0' if name == 'jobs' else 'whole seconds'}"
                                 f", not {value!r}")

    @classmethod
    def of(cls, options: BuildOptions | None, changes: Mapping[str, Any]) -> BuildOptions:
        """`options` (default: all defaults) with `changes` (field name -> value)."""
        from dataclasses import replace

        base = options if options is not None else cls()
        return replace(base, **changes) if changes else base


class BuildFields(TypedDict, total=False):
    """The fields of `BuildOptions` as keyword arguments of `build` (for type checkers:
    `build(context, **fields)` is checked as `BuildOptions(**fields)` would be)."""

    dockerfile: str | os.PathLike[str] | None
    tags: Sequence[str]
    target: str | None
    build_args: Mapping[str, str] | None
    outputs: Sequence[str]
    root: str | os.PathLike[str] | None
    jobs: int | None
    no_cache: bool
    no_cache_filter: Sequence[str]
    secrets: Sequence[str]
    ssh: Sequence[str]
    labels: Mapping[str, str] | None
    platform: str | Sequence[str] | None
    snapshotter: str
    progress: Sink | None
    iidfile: str | os.PathLike[str] | None
    metadata_file: str | os.PathLike[str] | None
    source_date_epoch: int | None
    compression: str
    cache_from: Sequence[str]
    cache_to: Sequence[str]
    explain_cache: bool
    build_contexts: Sequence[str]
    context_modes: str
    push: bool
    pull: bool
    registry: RegistryOptions | None
    allow: Sequence[str]
    network: str
    isolation: str
    add_hosts: Sequence[str]
    annotations: Sequence[str]
    shm_size: str | None
    ulimits: Sequence[str]
    attest: Sequence[str]
    load: bool
    frontend: str | None
    sign_key: str | os.PathLike[str] | None
