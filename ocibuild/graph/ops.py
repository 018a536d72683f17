"""Op kinds. Filesystem ops (image, scratch, exec, copy, mkdir) produce a root filesystem
state: a stack of layers. Context and HTTP sources are only ever read by other ops."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

from ocibuild.deferred import deferred_dataclass
from ocibuild.oci import canonical
from ocibuild.oci.digest import of_bytes as digest_of
from ocibuild.source_location import SourceLocation


def _plain(value: Any) -> Any:
    """The JSON form of a field value; inputs are referred to by digest only."""
    if isinstance(value, Op):
        return {"op": value.digest}
    if isinstance(value, Mount):
        return value.spec()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, eq=False)
class Op:
    """Base of all ops. `description` names the op for people and `location` says where
    it was written; neither is hashed: the same step written elsewhere is the same step."""

    kind: ClassVar[str] = "op"
    description: str = field(default="", kw_only=True)
    location: SourceLocation | None = field(default=None, kw_only=True, repr=False)
    # Fields excluded from the digest (presentation only).
    _unhashed: ClassVar[frozenset[str]] = frozenset({"description", "location"})

    @property
    def inputs(self) -> tuple[Op, ...]:
        found: list[Op] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Op):
                found.append(value)
            elif isinstance(value, tuple):
                for v in value:
                    if isinstance(v, Op):
                        found.append(v)
                    elif isinstance(v, Mount) and v.source is not None:
                        found.append(v.source)
        return tuple(found)

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, **{f.name: _plain(getattr(self, f.name)) for f in fields(self)
                                      if f.name not in self._unhashed}}

    @cached_property
    def digest(self) -> str:
        return digest_of(canonical.dumps(self.spec()))

    @property
    def produces_fs(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Op) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)


@deferred_dataclass(frozen=True, eq=False)
class ScratchSource(Op):
    """An empty root filesystem (FROM scratch)."""

    kind: ClassVar[str] = "scratch"


@dataclass(frozen=True, eq=False)
class ImageSource(Op):
    """A base image, pinned by manifest digest (resolved before the graph is made)."""

    kind: ClassVar[str] = "image"
    ref: str
    manifest_digest: str
    platform: str


@dataclass(frozen=True, eq=False)
class ContextSource(Op):
    """A local directory (the build context or a named context). Its location on disk is
    not part of the digest: the content checksum of what an op reads from it is part of
    that op's cache key instead."""

    kind: ClassVar[str] = "context"
    name: str = "context"
    excludes: tuple[str, ...] = ()

    @property
    def produces_fs(self) -> bool:
        return False


def url_file_name(url: str) -> str:
    """The name ADD gives a downloaded file, as BuildKit's Dockerfile frontend does: the
    last element of the URL's decoded path (never its query or #fragment),
    "__unnamed__" when there is none; a name with control characters is "download"."""
    from urllib.parse import unquote, urlsplit

    base = unquote(urlsplit(url).path).rstrip("/").rsplit("/", 1)[-1]
    if base in ("", "."):
        return "__unnamed__"
    name = base.strip()
    if name in ("", ".", "..") or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        return "download"
    return name


@deferred_dataclass(frozen=True, eq=False)
class HttpSource(Op):
    """A file downloaded for ADD URL (its content checksum is in the cache key)."""

    kind: ClassVar[str] = "http"
    url: str
    checksum: str = ""  # "sha256:..." when pinned with ADD --checksum
    filename: str = ""

    @property
    def produces_fs(self) -> bool:
        return False


@deferred_dataclass(frozen=True, eq=False)
class GitSource(Op):
    """A git repository's tree at a ref (ADD of a git URL, a git build context). Its cache
    key is the commit the ref resolves to, with the subdirectory and keep_git_dir."""

    kind: ClassVar[str] = "git"
    remote: str
    ref: str = ""
    subdir: str = ""
    keep_git_dir: bool = False
    checksum: str = ""  # a commit (prefix) the ref must resolve to (ADD --checksum)
    submodules: bool = True

    @property
    def produces_fs(self) -> bool:
        return False


@deferred_dataclass(frozen=True, eq=False)
class InlineSource(Op):
    """Files written in the Dockerfile (COPY <<EOF): (name, content) pairs."""

    kind: ClassVar[str] = "inline"
    files: tuple[tuple[str, str], ...] = ()
    mode: int = 0o644  # 0o755 for a RUN here-document run as a script (its shebang)

    def spec(self) -> dict[str, Any]:
        out = super().spec()
        if self.mode == 0o644:  # COPY here-documents keep their digests
            del out["mode"]
        return out

    @property
    def produces_fs(self) -> bool:
        return False


@deferred_dataclass(frozen=True)
class Mount:
    """A RUN --mount. `source` is the op whose filesystem (or context) a bind mount reads."""

    type: str  # bind | cache | secret | tmpfs | ssh
    target: str
    source: Op | None = None
    source_path: str = "/"
    readonly: bool = True
    id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    env: str = ""
    size: int = 0

    def spec(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            d[f.name] = {"op": value.digest} if isinstance(value, Op) else value
        return d


@dataclass(frozen=True, eq=False)
class ExecOp(Op):
    """A RUN: `args` run in `root` with the environment, user, mounts, network mode and
    security mode given; and the build's --add-host lines ((host, ip) pairs), --shm-size
    (bytes; 0: the default) and --ulimit values ((name, soft, hard), -1: unlimited)."""

    kind: ClassVar[str] = "exec"
    root: Op
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    network: str = "default"
    mounts: tuple[Mount, ...] = ()
    # "insecure": RUN --security=insecure (needs the security.insecure entitlement)
    security: str = "sandbox"
    extra_hosts: tuple[tuple[str, str], ...] = ()
    shm_size: int = 0
    ulimits: tuple[tuple[str, int, int], ...] = ()

    # fields left out of the digest at these values: a step that does not use them
    # keeps the digest it had before they existed
    _omitted_defaults: ClassVar[dict[str, Any]] = {
        "security": "sandbox", "extra_hosts": (), "shm_size": 0, "ulimits": ()}

    def spec(self) -> dict[str, Any]:
        out = super().spec()
        for name, default in self._omitted_defaults.items():
            if getattr(self, name) == default:
                del out[name]
        return out


@dataclass(frozen=True, eq=False)
class CopyOp(Op):
    """COPY/ADD: `sources` are paths in `source` (a context, an image or stage, or an HTTP
    source); `dest` is resolved against `cwd` in `root`."""

    kind: ClassVar[str] = "copy"
    root: Op
    source: Op
    sources: tuple[str, ...]
    dest: str
    cwd: str = "/"
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: tuple[str, ...] = ()
    parents: bool = False
    add: bool = False  # ADD: extract local tar archives
    user: str = ""  # the stage USER when COPY runs (for --chown names lookup)
    # here-documents (an InlineSource) copied to `dest` after `sources`, in the same
    # layer: `COPY <<EOF ./file /dest/` (never extracted, even by ADD)
    contents: Op | None = None

    def spec(self) -> dict[str, Any]:
        out = super().spec()
        if self.contents is None:  # a copy without here-documents keeps its digest
            del out["contents"]
        return out

    @property
    def rebased(self) -> bool:
        """--link without --chmod (as BuildKit merges it): the copy is made on an empty
        root and its layer stacked on `root`, so neither depends on what is below."""
        return self.link and not self.chmod

    @cached_property
    def digest_without_root(self) -> str:
        """What identifies a rebased copy in cache keys: the op with its root left out."""
        spec = {**self.spec(), "root": None}
        return digest_of(canonical.dumps(spec))


@deferred_dataclass(frozen=True, eq=False)
class MkdirOp(Op):
    """A directory made in `root` (WORKDIR), owned by `user`."""

    kind: ClassVar[str] = "mkdir"
    root: Op
    path: str
    mode: int = 0o755
    user: str = ""


def walk(targets: Op | tuple[Op, ...] | list[Op]) -> list[Op]:
    """Every op the targets depend on (themselves included), inputs before users, in a
    deterministic order: depth-first over inputs in field order."""
    roots = (targets,) if isinstance(targets, Op) else tuple(targets)
    seen: set[str] = set()
    order: list[Op] = []

    stack: list[tuple[Op, int]] = [(r, 0) for r in reversed(roots)]
    while stack:
        op, i = stack.pop()
        if op.digest in seen and i == 0:
            continue
        inputs = op.inputs
        if i < len(inputs):
            stack.append((op, i + 1))
            if inputs[i].digest not in seen:
                stack.append((inputs[i], 0))
            continue
        if op.digest not in seen:
            seen.add(op.digest)
            order.append(op)
    return order
