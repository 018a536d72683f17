"""The solver: cache keys for every op, then each op run (or reused) as soon as its
inputs are done.

A cache hit is a descriptor only: the op's result is its inputs' layers plus the
recorded layer, and no root filesystem is made. Only an op that must run asks the
snapshotter for one (which extracts the layers it has not extracted before).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ocibuild import entitlements
from ocibuild.atomic import new_dir, remove_tree
from ocibuild.cache import temporaries
from ocibuild.cache.records import CacheRecord
from ocibuild.cache.store import Store
from ocibuild.chmod import is_octal as is_octal_chmod
from ocibuild.errors import OcibuildError, with_location
from ocibuild.graph import (
    ContextSource,
    CopyOp,
    ExecOp,
    GitSource,
    HttpSource,
    ImageSource,
    InlineSource,
    MkdirOp,
    Op,
    ScratchSource,
    walk,
)
from ocibuild.oci import canonical
from ocibuild.oci.digest import hex_of_bytes, new_hash
from ocibuild.oci.image import load_image
from ocibuild.oci.layerref import LayerRef
from ocibuild.progress.events import Event, Sink
from ocibuild.snapshot import Snapshotter
from ocibuild.solver.checksum import (
    ContextChecksums,
    EntryDigests,
    keep_checksum,
    kept_checksum,
    memo_path,
)
from ocibuild.solver.explain import MAX_FILES, Explanation, explain_inputs
from ocibuild.solver.git_source import GitSources
from ocibuild.solver.pending import (
    PendingLayer,
    RemoteLayer,
    Slot,
    lower,
    resolve,
    resolve_chain,
)
from ocibuild.solver.results import OpResult
from ocibuild.solver.scheduler import Scheduler
from ocibuild.solver.secret_source import SecretSource

if TYPE_CHECKING:
    from ocibuild.cache.remote.lookup import BlobSource, RemoteRecords
    from ocibuild.idspace.requests import Request, RootFS
    from ocibuild.progress.transfer import StepProgress
    from ocibuild.snapshot.base import Prepared
    from ocibuild.solver.step_runner import StepRunner
    from ocibuild.threads import Task, Threads

KEY_VERSION = "ocibuild-cache-v1"
R = TypeVar("R")


@dataclass
class SolveOptions:
    """How a solve runs: the context, cache use, secrets, and what progress shows."""

    context_dir: Path | None = None
    ignore_patterns: tuple[str, ...] = ()
    jobs: int = os.cpu_count() or 1
    no_cache: bool = False
    no_cache_stages: frozenset[str] = frozenset()
    secrets: Mapping[str, SecretSource] = field(default_factory=dict)
    ssh: Mapping[str, Path] = field(default_factory=dict)
    source_date_epoch: int | None = None
    compression: str = "gzip"
    # no output reads the layer blobs: the snapshotter may keep layers as directories
    # and leave their blobs for the store to make when asked (cache.lazy_blobs)
    lazy_blobs: bool = False
    names: Mapping[str, str] = field(default_factory=dict)  # op digest -> progress name
    stage_of_op: Mapping[str, str] = field(default_factory=dict)
    context_dirs: Mapping[str, Path] = field(default_factory=dict)  # --build-context NAME=DIR
    remote: RemoteRecords | None = None  # records of --cache-from caches
    allow: frozenset[str] = frozenset()  # entitlements granted (--allow)
    git_modes: bool = False  # --context-modes=git: context files' modes as git knows them
    isolation: str = "userns"  # of RUN steps: "userns" or "chroot" (availability.choose)
    # a base image's layers this build pulls, fetched when its FROM step runs (shown
    # under it; True) -- ImageSources.fetch_layers; the steps shown before the solve
    fetch_image: Callable[[str, StepProgress], bool] | None = None
    shown_before: int = 0
    # called with the RUN steps that will run (not cached), before the first starts;
    # raises when one cannot run here (a platform no binfmt_misc handler runs)
    check_steps: Callable[[Sequence[ExecOp]], None] | None = None
    # called once while steps run long, with this thread otherwise idle (Scheduler.run)
    meanwhile: Callable[[], object] | None = None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Solver:
    def __init__(self, store: Store, snapshotter: Snapshotter, options: SolveOptions,
                 progress: Sink | None = None, runner: StepRunner | None = None) -> None:
        self.store = store
        self.snap = snapshotter
        self._runner = runner  # of RUN steps; None: the sandbox (step_runner)
        self.opts = options
        self.progress: Sink = progress or (lambda e: None)
        self.keys: dict[str, str] = {}
        self.rebased_keys: dict[str, str] = {}  # filesystem key -> a --link copy's digest
        self.key_inputs: dict[str, dict[str, Any]] = {}
        self.index: dict[str, int] = {}
        self.downloads: dict[str, Path] = {}
        # the solve's temporary directory, made when first needed (_temporary_dir)
        self._tmp: Path | None = None
        self._tmp_lock = threading.Lock()
        # git sources: keys by commit, trees when needed
        self.git = GitSources(Path(store.root), self._temporary_dir, options.secrets,
                              options.ssh)
        self._checksums: ContextChecksums | None = None
        self._named_checksums: dict[str, ContextChecksums] = {}
        self._scheduler: Scheduler[Op, OpResult] | None = None
        # thread pools start with the first step that runs (a cached build needs none)
        self._pools_lock = threading.Lock()
        self._releaser_pool: Threads | None = None
        self._releases: list[Task[None]] = []
        self._writes: list[Task[LayerRef | None]] = []  # layers of steps reported DONE
        self._shown_writes: list[tuple[Path, Task[LayerRef | None]]] = []  # with progress
        # "exporting to image", started to show the layers written, for the exporter to end
        self.export_shown: StepProgress | None = None
        self._writer_pool: Threads | None = None
        self._kept: list[Prepared] = []  # stacked roots, released when the solve ends
        self._kept_lock = threading.Lock()
        self.hits: dict[str, Hit] = {}  # op digest -> its record (found before solving)
        self.step_records: dict[str, CacheRecord] = {}  # op digest -> record written now
        self.ran: list[Op] = []  # steps that missed and ran
        self._steps: list[Op] = []

    @property
    def runner(self) -> StepRunner:
        if self._runner is None:
            from ocibuild.solver.step_runner import SandboxRunner

            self._runner = SandboxRunner()
        return self._runner

    @property
    def _releaser(self) -> Threads:
        with self._pools_lock:
            if self._releaser_pool is None:
                from ocibuild.threads import Threads

                self._releaser_pool = Threads(1, "release")
            return self._releaser_pool

    @property
    def _writer(self) -> Threads:
        with self._pools_lock:
            if self._writer_pool is None:
                from ocibuild.threads import Threads

                self._writer_pool = Threads(max(4, 2 * self.opts.jobs), "layer")
            return self._writer_pool

    # -- keys ------------------------------------------------------------------------------
    def context_dir(self, source: ContextSource) -> Path | None:
        """The directory a context source reads: a `--build-context NAME=DIR`, else the
        build context."""
        return self.opts.context_dirs.get(source.name, self.opts.context_dir)

    def checksums(self, name: str = "context") -> ContextChecksums:
        named = self.opts.context_dirs.get(name)
        if named is not None:  # no .dockerignore applies to a named context
            if name not in self._named_checksums:
                self._named_checksums[name] = ContextChecksums(
                    named, memo_path(self.store.root, named), git_modes=self.opts.git_modes)
            return self._named_checksums[name]
        if self._checksums is None:
            if self.opts.context_dir is None:
                raise OcibuildError("this build reads from a context but none was given")
            from ocibuild.dockerignore import IgnoreMatcher

            ignore = IgnoreMatcher(list(self.opts.ignore_patterns))
            self._checksums = ContextChecksums(
                self.opts.context_dir, memo_path(self.store.root, self.opts.context_dir),
                (lambda rel, is_dir: ignore.matches(rel)) if self.opts.ignore_patterns
                else None, reincludes=ignore.has_exclusions, git_modes=self.opts.git_modes)
        return self._checksums

    def _context_checksum(self, patterns: tuple[str, ...], *, with_mode: bool = True,
                          excludes: tuple[str, ...] = (), what: str = "",
                          entries: EntryDigests | None = None,
                          context: str = "context", parents: bool = False) -> str:
        # everything the checksum depends on but the files (checksum.KeptChecksums)
        directory = self.opts.context_dirs.get(context, self.opts.context_dir)
        kept_key = (context, str(directory), self.opts.ignore_patterns, self.opts.git_modes,
                    patterns, with_mode, excludes, parents)
        if (kept := kept_checksum(kept_key)) is not None:
            if entries is not None:
                entries.merge(kept[1])
            return kept[0]
        read = EntryDigests(MAX_FILES + 1)
        checksum = self._read_checksum(patterns, with_mode, excludes, what, read, context,
                                       parents)
        keep_checksum(kept_key, checksum, read)
        if entries is not None:
            entries.merge(read)
        return checksum

    def _read_checksum(self, patterns: tuple[str, ...], with_mode: bool,
                       excludes: tuple[str, ...], what: str, entries: EntryDigests,
                       context: str, parents: bool) -> str:
        extra = None
        if excludes:
            from ocibuild.dockerignore import IgnoreMatcher

            m = IgnoreMatcher(list(excludes))
            extra = lambda rel, is_dir: m.matches(rel) or m.matches(  # noqa: E731
                rel.rsplit("/", 1)[-1])
        try:
            return self.checksums(context).checksum(patterns, with_mode=with_mode,
                                                    extra_excluded=extra, entries=entries,
                                                    parents=parents)
        except FileNotFoundError as exc:
            if exc.filename is not None:  # a file that went away while it was read
                raise self._unreadable(exc, what, context) from None
            where = f"build context {context!r}" if context in self.opts.context_dirs \
                else "build context"
            raise OcibuildError(f"{what}: {exc.args[0]}: not found in the {where}") from None
        except OSError as exc:
            raise self._unreadable(exc, what, context) from None

    def _unreadable(self, exc: OSError, what: str, context: str) -> OcibuildError:
        """A context file or directory the build cannot read, as docker reports it."""
        base = self.checksums(context).context
        path = Path(exc.filename) if exc.filename else base
        with contextlib.suppress(ValueError):
            path = path.relative_to(base)
        reason = exc.strerror.lower() if exc.strerror else str(exc)
        return OcibuildError(f"{what}: cannot read {path} in the build context: {reason}")

    def compute_key(self, op: Op) -> str:
        rebased = isinstance(op, CopyOp) and op.rebased
        parts: dict[str, Any] = {"v": KEY_VERSION, "op": op.digest_without_root
                                 if rebased else op.digest}  # type: ignore[attr-defined]
        inputs = []
        for inp in op.inputs:
            if rebased and inp is op.root:  # type: ignore[attr-defined]
                inputs.append("link")  # a --link layer does not depend on what is below
            else:
                inputs.append(self.filesystem_key(inp))
        parts["inputs"] = inputs
        name = self.opts.names.get(op.digest, op.kind)
        files = EntryDigests(MAX_FILES + 1)
        if isinstance(op, CopyOp) and isinstance(op.source, ContextSource):
            parts["content"] = self._context_checksum(
                op.sources, with_mode=not is_octal_chmod(op.chmod), excludes=op.excludes,
                what=name, entries=files, context=op.source.name, parents=op.parents)
        if isinstance(op, ExecOp):
            for i, m in enumerate(op.mounts):
                if m.type == "bind" and isinstance(m.source, ContextSource):
                    path = m.source_path.strip("/") or "."
                    parts[f"mount{i}"] = self._context_checksum((path,), what=name,
                                                                entries=files,
                                                                context=m.source.name)
        if isinstance(op, HttpSource):
            parts["content"] = self._download(op)
        if self.opts.source_date_epoch is not None and op.kind in ("exec", "copy", "mkdir"):
            parts["sde"] = self.opts.source_date_epoch
        if isinstance(op, ImageSource):
            return op.manifest_digest
        if isinstance(op, GitSource):
            return self.git.key(op)
        key = hex_of_bytes(canonical.dumps(parts))
        # kept beside the key (not hashed): what --explain-cache compares
        self.key_inputs[op.digest] = {**parts, "explain": explain_inputs(
            op, name, self.opts.stage_of_op.get(op.digest, ""), files.digests, files.count)}
        if isinstance(op, CopyOp) and isinstance(op.source, GitSource):
            self.key_inputs[op.digest]["explain"]["git"] = self.git.describe(op.source)
        return key

    def filesystem_key(self, op: Op) -> str:
        """The key of `op`'s whole result as another op's input. A rebased (--link) copy's
        own key names its layer only; what it stacks on joins it here."""
        key = self.keys[op.digest]
        if isinstance(op, CopyOp) and op.rebased:
            below = self.filesystem_key(op.root)
            key = hex_of_bytes(f"{key} on {below}".encode())
            self.rebased_keys[key] = op.digest
        return key

    def _download(self, op: HttpSource) -> str:
        dest_dir = self._temporary_dir() / hex_of_bytes(op.url.encode())[:16]
        dest_dir.mkdir(exist_ok=True)
        dest = dest_dir / op.filename
        import urllib.request  # here: most builds download nothing

        h = new_hash()
        try:
            with urllib.request.urlopen(op.url, timeout=60) as resp, open(dest, "wb") as f:
                while chunk := resp.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
                modified = resp.headers.get("Last-Modified")
        except OSError as exc:
            raise OcibuildError(f"ADD {op.url}: download failed: {exc}") from None
        digest = f"sha256:{h.hexdigest()}"
        if op.checksum and op.checksum != digest:
            raise OcibuildError(f"ADD {op.url}: checksum mismatch: expected {op.checksum}, "
                                f"got {digest}")
        os.chmod(dest, 0o600)
        if modified:
            from email.utils import parsedate_to_datetime

            with contextlib.suppress(TypeError, ValueError):
                ts = parsedate_to_datetime(modified).timestamp()
                os.utime(dest, (ts, ts))
        self.downloads[op.digest] = dest_dir
        return digest

    # -- running ---------------------------------------------------------------------------
    def solve(self, target: Op | Sequence[Op]) -> dict[str, OpResult]:
        """Run (or reuse) every op `target` needs (several targets: one per platform of a
        multi-platform build, in one schedule, an op they share solved once); returns
        each op's result with every layer written."""
        targets = (target,) if isinstance(target, Op) else tuple(target)
        ops = walk(targets)
        try:
            self._check_entitlements(ops)
        except OcibuildError:
            self._finish()  # nothing ran: only the solve's temporary directory to remove
            raise
        visible = [op for op in ops if op.digest in self.opts.names]
        for i, op in enumerate(visible, start=1 + self.opts.shown_before):
            self.index[op.digest] = i
        for op in ops:
            try:
                self.keys[op.digest] = self.compute_key(op)
            except OcibuildError as exc:  # a COPY source missing from the context
                with_location(exc, op.location)
                raise
        if self._checksums is not None:
            self._checksums.save()
        for named in self._named_checksums.values():
            named.save()
        # every key is made: what they remember of the context's files is of no more use
        self._checksums, self._named_checksums = None, {}
        self._steps = [op for op in ops if _is_step(op)]
        for op in self._steps:
            if (hit := self._lookup(op)) is not None:
                self.hits[op.digest] = hit
        scheduled = self._schedule(targets, ops)
        if any(isinstance(op, ExecOp) and op.digest not in self.hits for op in scheduled):
            # first: a build's first steps are most often RUNs, which wait for it
            self.runner.prestart(self.opts.isolation)
        self._check_steps(scheduled)
        if any(_is_step(op) and op.digest not in self.hits for op in scheduled):
            self.snap.warm()
        self._scheduler = Scheduler[Op, OpResult](max(1, self.opts.jobs))
        # every step a hit: each op is a descriptor look-up, done here without threads
        inline = all(op.digest in self.hits for op in scheduled if _is_step(op))
        try:
            results = self._scheduler.run(scheduled, self._deps, self._work, inline=inline,
                                          meanwhile=self._load_later_modules,
                                          quick=self._quick)
            self._show_layer_writes()
            written = {op.digest: self._written(r) for op, r in results.items()}
            # outputs need the bytes of the target's layers, whatever cache they came from
            for each in targets:
                self.local_layers(results[each].layers, parallel=True)
            self._learn_remote_records()
            return written
        finally:
            self._finish()

    def _check_steps(self, scheduled: list[Op]) -> None:
        running = [op for op in scheduled
                   if isinstance(op, ExecOp) and op.digest not in self.hits]
        if running and self.opts.check_steps is not None:
            try:
                self.opts.check_steps(running)
            except OcibuildError:
                self._finish()  # nothing ran: only the solve's temporary directory
                raise

    def _check_entitlements(self, ops: Iterable[Op]) -> None:
        """Refuse the whole graph, before anything runs or is looked up, when a step needs
        an entitlement that was not granted (the frontend names the Dockerfile line; this
        holds for any graph)."""
        for op in ops:
            if not isinstance(op, ExecOp):
                continue
            for flag, entitlement in entitlements.needed(op.network, op.security):
                if entitlement not in self.opts.allow:
                    name = self.opts.names.get(op.digest, "RUN")
                    raise OcibuildError(f"{name}: "
                                        + entitlements.not_allowed(flag, entitlement))

    # -- cache lookups ------------------------------------------------------------------------
    def _lookup(self, op: Op) -> Hit | None:
        """The record for the op's key: the local store first, then --cache-from caches.
        A local record whose blob is gone does not count (a remote one may)."""
        if not self._use_cache(op):
            return None
        key = self.keys[op.digest]
        record = self.store.get_record(key)
        if record is not None:
            return Hit(record, None)
        if self.opts.remote is not None and (remote := self.opts.remote.get(key)) is not None:
            return Hit(remote.record, remote.source)
        return None

    def _quick(self, op: Op) -> bool:
        """An op solved without waiting: a cache hit or a source, which are descriptors
        (a base image only when no pull may be needed)."""
        if isinstance(op, ImageSource):
            return self.opts.fetch_image is None
        return op.digest in self.hits or not _is_step(op)

    def _deps(self, op: Op) -> tuple[Op, ...]:
        """What must be solved before `op`: a hit needs only the layers below it (as
        descriptors); a step that runs needs all its inputs."""
        if op.digest in self.hits:
            return (op.root,)  # type: ignore[attr-defined]
        return op.inputs

    def _schedule(self, targets: tuple[Op, ...], ops: list[Op]) -> list[Op]:
        """The ops to solve: those the target needs, plus every cached step whose whole
        chain is cached (reported as CACHED at no cost). A step that would run only for
        a cached step above it is left out: with a remote cache of the final stage, the
        stages it copied from are neither run nor downloaded."""
        needed: set[str] = set()
        stack = list(targets)
        while stack:
            op = stack.pop()
            if op.digest not in needed:
                needed.add(op.digest)
                stack.extend(self._deps(op))
        cheap: dict[str, bool] = {}
        for op in ops:  # inputs before users
            cheap[op.digest] = (not _is_step(op)) or (
                op.digest in self.hits and cheap[op.root.digest])  # type: ignore[attr-defined]
        return [op for op in ops if op.digest in needed or cheap[op.digest]]

    def local_layers(self, chain: tuple[Slot, ...], *,
                     parallel: bool = False) -> tuple[LayerRef, ...]:
        """`chain` written and its bytes here, ready to be read (an output, a bind
        mount's tree)."""
        self._fetch_missing(chain, parallel=parallel)
        return resolve_chain(chain)

    def stacked_layers(self, chain: tuple[Slot, ...]) -> list[LayerRef | Path]:
        """`chain` as the snapshotter takes it for a step's root or a source: pending
        layers as their directories where it stacks them, else waited for."""
        if not self.snap.stacks_pending:
            return list(self.local_layers(chain))
        self._fetch_missing(chain, parallel=False)
        return [lower(s) for s in chain]

    def _fetch_missing(self, chain: Iterable[Slot], *, parallel: bool) -> None:
        """The one place the blobs of cached layers that only a --cache-from cache holds
        are fetched, before something reads their bytes."""
        if self.opts.remote is None:  # every layer is in the store (or being written)
            return
        missing = [s for s in chain if s.ready and (layer := s.written()) is not None
                   and not self.store.layout.has_blob(layer.descriptor.digest)
                   and self.snap.reads_blob(layer)]
        if parallel and len(missing) > 1:
            from ocibuild.threads import Threads

            with Threads(min(len(missing), 4), "fetch") as pool:
                for f in [pool.submit(s.ensure_local, self.store.layout) for s in missing]:
                    f.result()
        else:
            for slot in missing:
                slot.ensure_local(self.store.layout)

    def _learn_remote_records(self) -> None:
        """Remote hits whose blobs are now here become local records (the next build
        on this machine needs no --cache-from for them)."""
        for hit in self.hits.values():
            layer = hit.record.layer
            if hit.source is not None and (layer is None
                                           or self.store.layout.has_blob(layer.digest)):
                with contextlib.suppress(OcibuildError):
                    self.store.put_record(hit.record)

    def cache_records(self, target: Op, mode: str) -> list[CacheRecord]:
        """The records a --cache-to writes: mode "min", the steps of the target's own
        filesystem; mode "max", every step of every stage the target needs."""
        if mode == "max":
            chosen = walk(target)
        else:
            chain: list[Op] = []
            op = target
            while _is_step(op):
                chain.append(op)
                op = op.root  # type: ignore[attr-defined]
            chosen = chain[::-1]
        out = []
        for op in chosen:
            record = self.step_records.get(op.digest) or (
                self.hits[op.digest].record if op.digest in self.hits else None)
            if record is not None:
                out.append(record)
        return out

    def cache_use(self) -> tuple[list[CacheRecord], list[str]] | None:
        """After a solve that ran nothing: the records its steps used and the keys it
        looked up in vain. None when a step ran, a record came from a --cache-from
        cache, or a key rests on something outside the context (a download)."""
        if self.ran or not self.memo_possible():
            return None
        return ([h.record for h in self.hits.values()],
                [self.keys[op.digest] for op in self._steps if op.digest not in self.hits])

    def memo_possible(self) -> bool:
        """False when a key rests on something outside the context (a download, a git
        ref) or a record came from a --cache-from cache: no rebuild memo can stand for
        this build, even once every step is cached."""
        return not (self.downloads or self.git.resolved
                    or any(h.source is not None for h in self.hits.values()))

    def record_of(self, op: Op) -> CacheRecord | None:
        """The record behind a step's result: written by this solve, or the hit used."""
        record = self.step_records.get(op.digest)
        if record is None and (hit := self.hits.get(op.digest)) is not None:
            record = hit.record
        return record

    def explain_misses(self) -> list[Explanation]:
        """For every step that ran, what changed against the closest cached record."""
        from ocibuild.solver.explain import explain

        candidates = [row.record for row in self.store.db.records()]
        if self.opts.remote is not None:
            candidates += self.opts.remote.records()
        name_of_key = {key: self.opts.names.get(d, "") for d, key in
                       [*self.keys.items(), *((d, k) for k, d in self.rebased_keys.items())]
                       if d in self.opts.names}
        missed = [(self.opts.names[op.digest], self.key_inputs.get(op.digest, {}))
                  for op in sorted(self.ran, key=lambda o: self.index.get(o.digest, 0))
                  if op.digest in self.opts.names]
        return explain(missed, candidates, set(self.keys.values()), name_of_key)

    def _use_cache(self, op: Op) -> bool:
        stage = self.opts.stage_of_op.get(op.digest, "")
        return not self.opts.no_cache and stage not in self.opts.no_cache_stages

    def _written(self, result: OpResult) -> OpResult:
        return OpResult(resolve_chain(result.layers), resolve(result.layer), result.cached)

    def _finish(self) -> None:
        """Wait for the layer writers, then remove every step directory (in one call
        under the mapping) and the solve's temporary files."""
        self._wait_for_writers()
        # a step directory left behind is removed by `ocibuild cache prune`; failing
        # here would hide the build's own error
        with contextlib.suppress(OcibuildError, OSError):
            if self._kept:
                self.snap.release_all(self._kept)
        if self._tmp is not None:
            remove_tree(self._tmp)

    def _temporary_dir(self) -> Path:
        """The solve's own temporary directory (downloads, here-documents, git trees),
        made on first use: most solves need none, and a directory made and removed costs
        ~0.5 ms."""
        with self._tmp_lock:
            if self._tmp is None:
                self._tmp = new_dir(temporaries.process_dir(self.store.root), "ocibuild-solve-")
            return self._tmp

    def _load_later_modules(self) -> None:
        """(While steps run long.) Load the modules the build needs once they are done
        (later COPY steps, layer records, the markers of layers kept unwritten, the
        layers' progress, what the caller asks for), rather than after, when the build
        waits for each (~3 ms); and start the threads that write the steps' layers (one
        for each step that may end at once) and release their directories."""
        from ocibuild.cache import lazy_blobs  # noqa: F401
        from ocibuild.oci import layerinfo  # noqa: F401
        from ocibuild.progress import layers  # noqa: F401
        from ocibuild.solver import fileop  # noqa: F401

        if self.snap.stacks_pending:
            self._writer.prestart(max(1, self.opts.jobs))
        self._releaser.prestart(1)

        if self.opts.meanwhile is not None:
            self.opts.meanwhile()

    def _show_layer_writes(self) -> None:
        """The layers this solve wrote in the background, shown (and waited for) as
        BuildKit's "exporting layers" once every step is done: bytes so far while some
        are still written. Nothing when no step ran."""
        if not self._shown_writes or not self.index:
            return
        from ocibuild.progress.layers import show_layer_writes

        self.export_shown = show_layer_writes(self.progress, max(self.index.values()) + 1,
                                              self._shown_writes)

    def _wait_for_writers(self) -> None:
        """A step reported DONE keeps its layer and record whatever interrupts the build:
        a second Ctrl-C or SIGTERM while they are written waits for them, then stops.
        (Polled: a Thread.join that an interrupt cut short returns at once the next time,
        with the thread still running.)"""
        interrupted: KeyboardInterrupt | None = None
        while True:
            try:
                while pending := [f for f in [*self._writes, *self._releases] if not f.done()]:
                    from ocibuild.threads import wait

                    wait(pending, timeout=0.02)  # back as soon as the last one ends
                for pool in (self._writer_pool, self._releaser_pool):
                    if pool is not None:
                        pool.shutdown(wait=True)
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted

    def _event(self, kind: str, op: Op, **kw: Any) -> None:
        index = self.index.get(op.digest)
        if index is not None:
            self.progress(Event(kind, index, self.opts.names[op.digest], time.monotonic(),
                                digest=op.digest, **kw))  # type: ignore[arg-type]

    def _pull_layers(self, op: ImageSource) -> bool:
        """Whether this build pulled the base's layers now (its step shows them)."""
        if self.opts.fetch_image is None:
            return False
        from ocibuild.progress.transfer import StepProgress

        index = self.index.get(op.digest)
        step = StepProgress(self.progress if index is not None else None, index or 0,
                            self.opts.names.get(op.digest, ""), op.digest)
        return self.opts.fetch_image(op.manifest_digest, step)

    def result_of(self, op: Op) -> OpResult:
        assert self._results is not None
        return self._results[op.digest]

    _results: dict[str, OpResult] | None = None

    def _work(self, op: Op) -> OpResult:
        if self._results is None:
            self._results = {}
        result = self._solve_one(op)
        self._results[op.digest] = result
        return result

    def _solve_one(self, op: Op) -> OpResult:
        if isinstance(op, ContextSource | HttpSource | InlineSource | GitSource):
            return OpResult((), None)
        if isinstance(op, ScratchSource):
            self._event("cached", op)
            return OpResult((), None, cached=True)
        if isinstance(op, ImageSource):
            pulled = self._pull_layers(op)
            image = load_image(self.store.layout, op.manifest_digest)
            layers = tuple(LayerRef(d, diff) for d, diff in
                           zip(image.manifest.layers, image.config.diff_ids, strict=True))
            if not pulled:
                self._event("cached", op)
            return OpResult(layers, None, cached=not pulled)
        root = self.result_of(op.root)  # type: ignore[attr-defined]
        hit = self.hits.get(op.digest)
        if hit is not None:
            record = hit.record
            layer: Slot | None = None
            if record.layer is not None and record.diff_id:
                layer = LayerRef(record.layer, record.diff_id)
                if hit.source is not None and self.opts.remote is not None:
                    layer = RemoteLayer(layer, self.opts.remote)
            self._event("cached", op)
            return OpResult(root.layers + ((layer,) if layer else ()), layer, cached=True)
        with self._kept_lock:
            self.ran.append(op)
        self._event("started", op)
        try:
            prepared = self._run(op, root)
            slot = self._commit_step(op, prepared)
        except OcibuildError as exc:
            self._event("failed", op, text=exc.message)
            from ocibuild.idspace.userns import UsernsCallError

            if isinstance(exc, UsernsCallError):  # a COPY's or a WORKDIR's file op
                name = self.opts.names.get(op.digest, op.kind)
                raise with_location(OcibuildError(f"{name}: {exc.message}"),
                                    op.location) from None
            with_location(exc, op.location)
            raise
        self._event("done", op)
        return OpResult(root.layers + ((slot,) if slot else ()), slot)

    def _commit_step(self, op: Op, prepared: Prepared) -> Slot | None:
        """The step's layer: with overlay written in the background (later steps stack
        the upper directory meanwhile), otherwise now."""
        if self.snap.stacks_pending:
            future = self._writer.submit(self._write_and_record, op, prepared)
            self._writes.append(future)
            if (progress := self.snap.layer_progress(prepared)) is not None:
                self._shown_writes.append((progress, future))
            return PendingLayer(self.snap.pending_dir(prepared), future)
        try:
            return self._write_and_record(op, prepared)
        finally:
            self.release_later(prepared)

    def _write_and_record(self, op: Op, prepared: Prepared) -> LayerRef | None:
        try:
            layer = self.snap.commit(prepared, compression=self.opts.compression,
                                     source_date_epoch=self.opts.source_date_epoch,
                                     blob=not self.opts.lazy_blobs)
        except OcibuildError as exc:
            name = self.opts.names.get(op.digest, op.kind)
            raise OcibuildError(f"{name}: writing its layer failed: {exc.message}") from None
        # the record only once its blob is in the store
        record = CacheRecord(
            key=self.keys[op.digest], layer=layer.descriptor if layer else None,
            diff_id=layer.diff_id if layer else None, created=_now(),
            description=self.opts.names.get(op.digest, op.kind),
            inputs=self.key_inputs.get(op.digest, {}))
        self.store.put_record(record)
        self.step_records[op.digest] = record
        return layer

    def prepare(self, chain: tuple[Slot, ...]) -> Prepared:
        """A root filesystem for a step over `chain`. With overlay it is kept until the
        solve ends (its upper may become a later step's lower); native roots are the
        caller's to release."""
        prepared = self.snap.prepare(self.stacked_layers(chain))
        if self.snap.stacks_pending:
            with self._kept_lock:
                self._kept.append(prepared)
        return prepared


    def _run(self, op: Op, root: OpResult) -> Prepared:
        """Run the op in a fresh root; returns the prepared root holding its change."""
        if isinstance(op, ExecOp):
            from ocibuild.solver.execute import run_exec

            return run_exec(self, op, root)
        base = () if isinstance(op, CopyOp) and op.rebased else root.layers
        prepared = self.prepare(base)
        try:
            if isinstance(op, CopyOp):
                self._copy(op, prepared)
            elif isinstance(op, MkdirOp):
                from ocibuild.solver.fileop import MkdirIn

                self._userns(MkdirIn(prepared.root, op.path, op.mode, op.user))
            else:
                raise OcibuildError(f"cannot run op kind {op.kind}")
        except BaseException:
            if not self.snap.stacks_pending:
                self.release_later(prepared)
            raise
        return prepared

    def release_later(self, prepared: Prepared) -> None:
        """Remove a step's directories off the critical path (done before solve returns)."""
        self._releases.append(self._releaser.submit(self.snap.release, prepared))

    def _copy(self, op: CopyOp, prepared: Prepared) -> None:
        from ocibuild.solver.fileop import CopyInto

        # the build context's .dockerignore (a named --build-context has none)
        ignored = isinstance(op.source, ContextSource) \
            and op.source.name not in self.opts.context_dirs
        with self._source_dir(op.source) as source:
            request = CopyInto(
                root=prepared.root, source=source, sources=op.sources,
                dest=op.dest, cwd=op.cwd, chown=op.chown, chmod=op.chmod,
                excludes=op.excludes, parents=op.parents, add=op.add,
                from_context=isinstance(
                    op.source, ContextSource | HttpSource | InlineSource | GitSource),
                ignore=tuple(self.opts.ignore_patterns) if ignored else (),
                git_modes=self.opts.git_modes and isinstance(op.source, ContextSource),
                # with here-documents a second copy writes into the same upper directory
                # after this one: it must not become the last copy that others link from
                links=str(self.store.root) if isinstance(op.source, ContextSource)
                and op.contents is None else "")
            self._userns(request)
        if isinstance(op.contents, InlineSource):  # then the here-documents, same root
            with self._source_dir(op.contents) as source:
                self._userns(dataclasses.replace(
                    request, source=source, from_context=True, ignore=(), git_modes=False,
                    links="",
                    sources=tuple(name for name, _ in op.contents.files), add=False,
                    parents=False))

    @contextlib.contextmanager
    def _source_dir(self, source: Op) -> Iterator[RootFS]:
        from ocibuild.idspace.requests import RootFS

        if isinstance(source, ContextSource):
            yield RootFS.directory(self.context_dir(source))
        elif isinstance(source, HttpSource):
            yield RootFS.directory(str(self.downloads[source.digest]))
        elif isinstance(source, InlineSource):
            yield RootFS.directory(self.inline_dir(source))
        elif isinstance(source, GitSource):
            yield RootFS.directory(self.git.directory(source))
        else:
            chain = self.result_of(source).layers
            spec, prepared = self.snap.source_view(self.stacked_layers(chain))
            try:
                yield spec
            finally:
                if prepared is not None:
                    self.release_later(prepared)

    def inline_dir(self, source: InlineSource) -> Path:
        """A directory holding the here-document files (mode 0644 for COPY, as BuildKit
        makes them; 0755 for a RUN script)."""
        base = self._temporary_dir() / f"inline-{source.digest.split(':')[1][:16]}"
        if not base.is_dir():
            tmp = new_dir(base.parent)
            tmp.chmod(0o755)  # a RUN script's mount: any USER may run it
            for name, content in source.files:
                path = tmp / name
                path.write_text(content, encoding="utf-8", errors="surrogateescape")
                path.chmod(source.mode)
            with contextlib.suppress(OSError):  # another step made the same one first
                tmp.rename(base)
        return base

    def _userns(self, request: Request[R]) -> R:
        """A file op under the sandbox mapping, in a process other than the builder."""
        from ocibuild.idspace.userns import request_isolated

        return request_isolated(request)

    def seed_cache(self, source: Op, path: str, dest: Path) -> None:
        """A new cache mount's first contents: `path` of `source`'s filesystem copied to
        the directory `dest`."""
        from ocibuild.solver.fileop import SeedCache

        with self._source_dir(source) as spec:
            self._userns(SeedCache(spec, path, str(dest)))

    @property
    def cancelled(self) -> Any:
        assert self._scheduler is not None
        return self._scheduler.cancelled


@dataclass(frozen=True)
class Hit:
    """A cache hit: a record (a descriptor of the layer), and where the layer's bytes
    are when the local store lacks them (None: a local record)."""

    record: CacheRecord
    source: BlobSource | None


def _is_step(op: Op) -> bool:
    return isinstance(op, ExecOp | CopyOp | MkdirOp)


NameOf = Callable[[Op], str]
