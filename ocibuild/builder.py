"""`build(...)`: a Dockerfile and a context in, an image out (the Python API behind
`ocibuild build`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild import entitlements
from ocibuild.build_options import CONTEXT_MODES, BuildOptions
from ocibuild.errors import UsageError, os_error
from ocibuild.oci.config import History, ImageConfig
from ocibuild.oci.platform import Platform

if TYPE_CHECKING:
    from typing import Unpack

    from ocibuild.attest import Predicate
    from ocibuild.attestations import AttestRequest
    from ocibuild.build_options import BuildFields
    from ocibuild.build_sources import BuildContext, ImageSources
    from ocibuild.cache.remote import BuildCaches, CacheExportReport
    from ocibuild.cache.store import Store
    from ocibuild.exporter import BuildResult, ExportReport
    from ocibuild.exporter.annotation_keys import Annotation
    from ocibuild.exporter.docker_daemon import DaemonAddress
    from ocibuild.exporter.spec import OutputSpec
    from ocibuild.frontend.dockerfile.convert import BuildInputs, Conversion, StageState
    from ocibuild.frontend.dockerfile.parser import AST
    from ocibuild.frontend.lower import GraphDefinition
    from ocibuild.graph import ExecOp, Op, State
    from ocibuild.idspace.userns import Session
    from ocibuild.oci.layerref import LayerRef
    from ocibuild.progress.events import Sink
    from ocibuild.progress.transfer import StepProgress
    from ocibuild.sandbox.availability import Choice
    from ocibuild.snapshot import Snapshotter
    from ocibuild.solver.explain import Explanation
    from ocibuild.solver.results import OpResult
    from ocibuild.solver.secret_source import SecretSource
    from ocibuild.solver.solve import Solver


@dataclass
class BuildReport:
    """What `build` made: the image's digests and names, and how the steps went."""

    manifest_digest: str
    config_digest: str
    image_id: str
    names: tuple[str, ...]
    config: ImageConfig
    warnings: list[str] = field(default_factory=list)
    materialized: int = 0  # root filesystems made (0 on a fully cached rebuild)
    steps: int = 0
    cached_steps: int = 0
    export: ExportReport | None = None
    cache_exports: tuple[CacheExportReport, ...] = ()  # one per --cache-to
    cache_explanations: tuple[Explanation, ...] = ()  # with explain_cache: why steps missed
    pushed: tuple[str, ...] = ()  # name@digest of each reference pushed
    push_sent: bool = False  # the pushes sent something (else every name held the image)
    signed: tuple[str, ...] = ()  # with sign_key: those of `pushed` signed
    loaded: tuple[str, ...] = ()  # with load: what the docker daemon says it loaded
    cache_use: CacheUse | None = None  # a build that ran nothing: what it rests on
    memo_possible: bool = True  # False: it rests on a download or a git ref (no memo)


@dataclass(frozen=True)
class CacheUse:
    """What the image of a build that ran no step rests on, besides its Dockerfile,
    context and the store's image names: the records used (key, layer digest, created),
    the keys looked up and missing, and the image's blobs. The rebuild memo checks
    these before it answers the same build again."""

    used: tuple[tuple[str, str | None, str], ...]
    missed: tuple[str, ...]
    blobs: tuple[str, ...]


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history_times(history: list[History], base: int, epoch: str | None
                  ) -> tuple[list[History], str]:
    """The image's history with every time filled in, and the image's `created`.

    As BuildKit: a new layer's entry carries the time its cache record was made (so a
    cached rebuild makes the same image, and so does a build from a remote cache); an
    entry without a layer takes the time of the first new layer, or of the layer
    before it once one is there; the image is as old as its last entry. With
    SOURCE_DATE_EPOCH every new entry, and every later one, is that time."""
    if epoch is not None:
        limit = datetime.fromisoformat(epoch)
        return [h if i < base and _not_after(h.created, limit) else replace(h, created=epoch)
                for i, h in enumerate(history)], epoch
    first_new = ""
    seen_gap = False
    for h in history:
        if h.created:
            first_new = h.created
            if seen_gap:
                break
        else:
            seen_gap = True
    filled: list[History] = []
    current, seen_gap = first_new, False
    for h in history:
        if h.created:
            if seen_gap:
                current = h.created
            filled.append(h)
        else:
            seen_gap = True
            filled.append(replace(h, created=current))
    created = next((h.created for h in reversed(filled) if h.created), "")
    return filled, created or _rfc3339(datetime.now(UTC).timestamp())


def _not_after(created: str, limit: datetime) -> bool:
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        return False
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) <= limit


def parse_secret(text: str) -> SecretSource:
    """A --secret value: id=NAME,src=FILE | id=NAME,env=VAR (type= accepted)."""
    from ocibuild.solver.secret_source import SecretSource

    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--secret {text}: {item!r} is not key=value")
        fields[key.strip().lower()] = value
    sid = fields.get("id", "")
    src = fields.get("src") or fields.get("source") or ""
    env = fields.get("env", "")
    if not sid:
        sid = Path(src).name if src else env
    if not sid:
        raise UsageError(f"--secret {text}: needs id=NAME")
    if src:
        path = Path(src).expanduser()
        try:  # a file the step could not read fails now, not when a step mounts it
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError as exc:
            raise os_error(exc, f"--secret {text}: cannot read", src, error=UsageError) \
                from None
        if not path.is_file():
            raise UsageError(f"--secret {text}: {src} is not a readable file")
        return SecretSource(sid, path=path)
    return SecretSource(sid, env=env or sid)


def parse_ssh(values: Sequence[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for text in values:
        sid, _, paths = text.partition("=")
        sid = sid or "default"
        path = paths.split(",")[0] if paths else os.environ.get("SSH_AUTH_SOCK", "")
        if not path:
            raise UsageError(f"--ssh {text}: SSH_AUTH_SOCK is not set; give a socket path")
        found[sid] = Path(path)
    return found


def _source_date_epoch(build_args: Mapping[str, str], given: int | None) -> int | None:
    if given is not None:
        return given
    text = build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH={text!r} is not a number of seconds") from None


def _export_step(progress: Sink | None, indexes: Iterable[int], outputs: Sequence[OutputSpec],
                 push: bool, started: StepProgress | None = None) -> StepProgress | None:
    """BuildKit's "exporting to image" step, started, for a build that writes a tar or
    pushes (whose bytes it shows), or `started` (the solver showed its layers written
    there); None when there is nothing to show."""
    if started is not None:
        return started
    if progress is None or not (push or any(s.type in ("oci", "docker") for s in outputs)):
        return None
    from ocibuild.progress.transfer import export_step

    step = export_step(progress, max(indexes, default=0) + 1)
    step.start()
    return step


def _platforms(given: str | Sequence[str] | None) -> tuple[Platform, ...]:
    """The --platform list (comma-separated, or a sequence from the API); () for none."""
    from ocibuild.oci.platform import parse_platforms

    text = given if isinstance(given, str) or given is None else ",".join(given)
    if not text:
        return ()
    try:
        return parse_platforms(text)
    except ValueError as exc:
        raise UsageError(f"--platform: {exc}") from None


@dataclass
class _Definition:
    """The build's definition and its checked options, read before the store opens: a
    bad option or an unreadable Dockerfile fails here, before anything is locked."""

    options: BuildOptions
    chosen: Choice
    granted: frozenset[str]
    context_dir: Path
    ast: AST | None  # None: the definition is a graph (`graph`)
    ignore_patterns: list[str]
    inputs: BuildInputs  # for convert, less the named contexts resolved in the store
    named_contexts: dict[str, BuildContext]
    context_dirs: dict[str, Path]
    outputs: list[OutputSpec]
    to_push: list[str]
    annotations: tuple[Annotation, ...]
    secrets: dict[str, SecretSource]
    ssh: dict[str, Path]
    source_date_epoch: int | None
    daemon: DaemonAddress | None  # with load: the docker daemon's address
    attest: AttestRequest
    dockerfile: tuple[str, bytes]  # its file name and text, for provenance
    context_git: tuple[str, str]  # a git context's URL (credentials removed) and commit
    platforms: tuple[Platform, ...] = ()  # as given; several: a multi-platform build
    graph: GraphDefinition | None = None  # a state, from ocibuild.solve or a frontend


def build(context: str | os.PathLike[str], options: BuildOptions | None = None, /,
          **kwargs: Unpack[BuildFields]) -> BuildReport:
    """Build the Dockerfile in `context` and write the image to `options.outputs`
    (default: the local store, named by `options.tags`); return what was made.

    `context` is a directory or a git URL (`https://host/repo.git#REF:SUBDIR`,
    `git://...`, `git@host:repo.git`), checked out into the store. `options` is a
    `BuildOptions`; keyword arguments set (or override) its fields:
    `build(".", tags=["app"])` is `build(".", BuildOptions(tags=["app"]))`.

    Raises a `UsageError` for a bad option, a `DockerfileError` for a Dockerfile that
    cannot be parsed or converted, a `StepFailedError` for a failing RUN (with its
    `returncode` and output `tail`), a `RegistryError` (with the HTTP `status`) for a
    registry that refuses or cannot be reached, a `SandboxError` where steps cannot be
    isolated here, a `StoreError` for a store that cannot be used; all are
    `OcibuildError`s."""
    return _build(_load_definition(context, BuildOptions.of(options, kwargs)))


class LoadedBuild:
    """A build whose options are checked and whose Dockerfile is read and parsed, to be
    run (`run`), and run again as it was read: the rebuild memo's second build sees the
    definition its first built, and does not read and parse it again."""

    def __init__(self, definition: _Definition) -> None:
        self._definition = definition

    def run(self, progress: Sink | None) -> BuildReport:
        definition = self._definition
        return _build(replace(definition, options=replace(definition.options,
                                                          progress=progress)))


def load_build(context: str | os.PathLike[str], options: BuildOptions) -> LoadedBuild:
    """What `build(context, options)` does before it opens the store: its errors
    (UsageError, DockerfileError) are raised here."""
    return LoadedBuild(_load_definition(context, options))


def solve(state: State, options: BuildOptions | None = None, /,
          **kwargs: Unpack[BuildFields]) -> BuildReport:
    """Build a graph API state (`ocibuild.graph`) as `build` builds a Dockerfile, with
    the same options (those about the Dockerfile aside), and return the same report.
    The build's context is the first `context()` the state reads (else the current
    directory); a `.dockerignore` is not read: `context(exclude=...)` says it.

    Raises what `build` raises (a `UsageError` for a bad state or option)."""
    from ocibuild.frontend.lower import GraphDefinition

    graph = GraphDefinition.of(state)
    options = BuildOptions.of(options, kwargs)
    given = [n for n in ("dockerfile", "target", "frontend") if getattr(options, n)]
    if given:
        raise UsageError(f"solve: {', '.join(given)} only apply to a build definition "
                         "file (ocibuild.build); a state is built as it is")
    main = graph.sources.main
    return _build(_load_definition(main.path if main is not None else ".", options, graph))


def _build(definition: _Definition) -> BuildReport:
    """Solve the definition and export what it makes."""
    from ocibuild import failed_build
    from ocibuild.build_sources import ImageSources
    from ocibuild.cache.store import Store
    from ocibuild.exporter import BuildResult
    from ocibuild.exporter.push import PushConnections, push_images
    from ocibuild.idspace import userns
    from ocibuild.platform_build import emulation_check
    from ocibuild.signing.build import load_build_key, sign_pushed

    options = definition.options
    if len(definition.platforms) > 1:
        from ocibuild.platform_build import build_platforms

        return build_platforms(definition)
    sign_key = load_build_key(options.sign_key, bool(definition.to_push))
    started = datetime.now(UTC)
    connections = PushConnections(definition.to_push, options.registry)
    store = Store.open(options.root)
    resolve = ImageSources(store, registry=options.registry, contexts=definition.named_contexts,
                           pull=options.pull, progress=options.progress)
    with store.lock(), userns.session() as session, failed_build.cleaned_up(store), \
            contextlib.closing(resolve), connections:
        conv, snap = _convert(definition, store, session, resolve)
        solver, results, caches = _solve(definition, store, snap, conv, resolve,
                                         check_steps=emulation_check([conv]))
        final = results[conv.target.op.digest]
        config, base_layers = _image_config(conv.target, results, solver,
                                            definition.source_date_epoch)
        shown = _export_step(options.progress, solver.index.values(), definition.outputs,
                             bool(definition.to_push), solver.export_shown)
        with _failing(shown):
            attestations = _attestations(definition, store, conv.target.op, solver,
                                         final.layers, started)
            report = _export(definition, store, BuildResult(config, final.layers, base_layers),
                             shown, attestations)
        cache_exports = _export_caches(caches, solver, conv.target.op)
        explanations = solver.explain_misses() if options.explain_cache else []
        with _failing(shown):
            pushes = push_images(report, store, options.registry, shown, connections)
            signed = sign_pushed(pushes.references, sign_key, options.registry)
        if shown is not None:
            shown.done()
        loaded = _load_and_write_files(definition, store, report)
        snap.finish()
    return _report(definition, conv, snap, solver, results, caches, report, ReportParts(
        config=config, cache_exports=tuple(cache_exports),
        explanations=tuple(explanations), pushed=pushes.references,
        push_sent=pushes.sent, loaded=loaded, signed=signed))


def _load_definition(context: str | os.PathLike[str], options: BuildOptions,
                     graph: GraphDefinition | None = None) -> _Definition:
    """Check the options, find the context and read and parse its Dockerfile (or run
    the frontend it names); `graph`: the state to build instead."""
    from ocibuild import attestations, step_options
    from ocibuild.build_sources import context_directories, parse_build_contexts
    from ocibuild.exporter import parse_annotations, parse_output, push_targets
    from ocibuild.frontend.dockerfile.convert import BuildInputs
    from ocibuild.sandbox import availability
    from ocibuild.sources import git_context

    attest = attestations.check(options.attest)
    daemon = None
    if options.load:  # a DOCKER_HOST it cannot use fails before the build
        from ocibuild.exporter.docker_daemon import address_from_env

        daemon = address_from_env()
    if options.context_modes not in CONTEXT_MODES:
        raise UsageError(f"--context-modes {options.context_modes}: expected "
                         f"{' or '.join(CONTEXT_MODES)}")
    granted = entitlements.parse_allow(options.allow)
    entitlements.check_build_network(options.network, granted)
    extra_hosts = step_options.parse_add_hosts(options.add_hosts)
    shm_bytes = step_options.parse_shm_size(options.shm_size)
    limits = step_options.parse_ulimits(options.ulimits)
    chosen = availability.choose(options.isolation)
    secret_map = {s.id: s for s in (parse_secret(t) for t in options.secrets)}
    ssh_map = parse_ssh(options.ssh)
    git_contexts = git_context.for_build(options.root, secret_map, ssh_map,
                                         options.build_args or {})
    git_dir = git_contexts.directory(str(context))
    context_dir = git_dir or Path(context).resolve()
    if not context_dir.is_dir():
        raise UsageError(f"{context}: the build context is not a directory")
    df_path, text = _read_dockerfile(context_dir, options.dockerfile) if graph is None \
        else (context_dir / "(state)", b"")
    output_specs = [parse_output(o) for o in options.outputs]
    to_push = push_targets(output_specs, options.tags, options.push)
    image_annotations = parse_annotations(options.annotations)
    named_contexts = parse_build_contexts(options.build_contexts, git=git_contexts.directory)
    args = dict(options.build_args or {})
    sde = _source_date_epoch(args, options.source_date_epoch)
    ast, graph = _frontend(options, context_dir, df_path, text, graph)
    ignore_patterns = graph.ignore_patterns if graph is not None \
        else _ignore_patterns(context_dir, df_path)
    if graph is not None:  # the directories and OCI layouts the state reads
        named_contexts |= parse_build_contexts(graph.sources.build_contexts())
    context_dirs = context_directories(named_contexts)
    platforms = _platforms(options.platform)
    _check_several_platforms(platforms, graph)
    inputs = BuildInputs(build_args=args, target=options.target,
                         platform=platforms[0] if len(platforms) == 1 else None,
                         context_excludes=tuple(ignore_patterns),
                         labels=dict(options.labels or {}),
                         context_dirs=frozenset(context_dirs),
                         network=options.network, allow=granted,
                         extra_hosts=extra_hosts, shm_size=shm_bytes, ulimits=limits)
    return _Definition(options, chosen, granted, context_dir, ast, ignore_patterns, inputs,
                       named_contexts, context_dirs, output_specs, to_push, image_annotations,
                       secret_map, ssh_map, sde, daemon, attest, (df_path.name, text),
                       (_redacted(str(context)), git_contexts.commits.get(str(context), ""))
                       if git_dir is not None else ("", ""), platforms, graph)


def _check_several_platforms(platforms: Sequence[Platform], graph: GraphDefinition | None
                             ) -> None:
    """Refuse what a multi-platform build does not do yet, before anything runs."""
    if len(platforms) < 2:
        return
    if graph is not None:
        raise UsageError(f"--platform {','.join(map(str, platforms))}: a build definition "
                         "from the graph API or a Python frontend cannot be built for "
                         "several platforms at once yet; build one platform at a time")


def _frontend(options: BuildOptions, context_dir: Path, df_path: Path, text: bytes,
              graph: GraphDefinition | None) -> tuple[AST | None, GraphDefinition | None]:
    """The definition as the Dockerfile frontend's syntax tree, or as the state the
    chosen frontend made of it (`graph` when given: ocibuild.solve's state)."""
    from ocibuild.frontend import registry
    from ocibuild.frontend.dockerfile import parser

    if graph is not None:
        return None, graph
    decoded = text.decode("utf-8", errors="surrogateescape")
    args = options.build_args or {}
    chosen = registry.choose(options.frontend, decoded, args)
    if chosen.run is None:
        return parser.parse(text, df_path.name), None
    from ocibuild.frontend.lower import GraphDefinition
    from ocibuild.graph import Context, FrontendContext
    from ocibuild.oci.platform import host

    main = Context(str(context_dir), exclude=tuple(_ignore_patterns(context_dir, df_path)))
    ctx = FrontendContext(main, df_path, decoded, dict(args), options.target,
                          str(next(iter(_platforms(options.platform)), None) or host()))
    return None, GraphDefinition.of(registry.run(chosen, ctx), main, chosen.name)


def _redacted(url: str) -> str:
    from ocibuild.sources.git_url import redact

    return redact(url)


def _read_dockerfile(context_dir: Path, given: str | os.PathLike[str] | None) -> tuple[Path, bytes]:
    df_path = Path(given) if given else context_dir / "Dockerfile"
    if given and not df_path.is_absolute() and not df_path.exists():
        df_path = context_dir / df_path
    try:
        return df_path, df_path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the Dockerfile {df_path}: {exc.strerror}") from None


def _ignore_patterns(context_dir: Path, df_path: Path) -> list[str]:
    from ocibuild import dockerignore

    ignore_file = dockerignore.find_ignore_file(context_dir, df_path)
    if ignore_file is None:
        return []
    return dockerignore.read_patterns(
        ignore_file.read_text(encoding="utf-8", errors="surrogateescape"))


def _convert(definition: _Definition, store: Store, session: Session, resolve: ImageSources
             ) -> tuple[Conversion, Snapshotter]:
    """The Dockerfile as a graph of ops, and the snapshotter to solve it with."""
    from ocibuild.frontend.dockerfile.convert import convert
    from ocibuild.graph import ExecOp, walk
    from ocibuild.snapshot import open_snapshotter
    from ocibuild.snapshot.select import probe_known

    options, chosen = definition.options, definition.chosen
    new_store = options.snapshotter != "native" and not chosen.bare and not probe_known(store)
    if new_store:
        session.warm()  # the probe needs the file-op server first thing
    inputs = replace(definition.inputs, context_images=frozenset(resolve.contexts))
    conv = definition.graph.convert(inputs, resolve) if definition.graph is not None \
        else convert(definition.ast, inputs, resolve)  # type: ignore[arg-type]
    if new_store and not options.cache_from and any(isinstance(op, ExecOp)
                                                    for op in walk(conv.target.op)):
        from ocibuild.sandbox import prestart

        # a store that never built has no records: every RUN runs, and the sandbox
        # comes up while the probe runs instead of after it
        prestart(chosen.isolation)
    return conv, open_snapshotter(store, options.snapshotter, can_mount=not chosen.bare)


def _solve(definition: _Definition, store: Store, snap: Snapshotter, conv: Conversion,
           resolve: ImageSources, targets: Sequence[Op] = (),
           check_steps: Callable[[Sequence[ExecOp]], None] | None = None
           ) -> tuple[Solver, dict[str, OpResult], BuildCaches | None]:
    """Run (or find in the caches) every step the target needs (or `targets`: one per
    platform, in one solve)."""
    from ocibuild.exporter import reads_layer_blobs, solve_compression
    from ocibuild.solver.solve import KEY_VERSION, SolveOptions, Solver

    options = definition.options
    opts = SolveOptions(
        context_dir=definition.context_dir, ignore_patterns=tuple(definition.ignore_patterns),
        jobs=options.jobs or os.cpu_count() or 1, no_cache=options.no_cache,
        no_cache_stages=frozenset(s.lower() for s in options.no_cache_filter),
        secrets=definition.secrets, ssh=definition.ssh,
        source_date_epoch=definition.source_date_epoch,
        compression=solve_compression(definition.outputs, options.compression),
        lazy_blobs=not (reads_layer_blobs(definition.outputs, definition.to_push)
                        or options.cache_to or definition.attest.any
                        or definition.daemon is not None),
        names=conv.names, stage_of_op=conv.stage_of_op, context_dirs=definition.context_dirs,
        allow=definition.granted, isolation=definition.chosen.isolation,
        git_modes=options.context_modes == "git",
        fetch_image=resolve.fetch_layers if resolve.pulling else None,
        shown_before=resolve.vertices, check_steps=check_steps,
        meanwhile=_load_export_modules)
    caches = None
    if options.cache_from or options.cache_to:  # the remote-cache code loads only then
        from ocibuild.cache.remote import BuildCaches

        caches = BuildCaches(store, options.cache_from, options.cache_to, options.registry)
        opts.remote = caches.load(KEY_VERSION)
    solver = Solver(store, snap, opts, options.progress)
    return solver, solver.solve(list(targets) or conv.target.op), caches


def _load_export_modules() -> None:
    """(While steps run long.) The image writer, loaded before the build waits for it."""
    from ocibuild.exporter import image_writer  # noqa: F401


def _image_config(state: StageState, results: Mapping[str, OpResult], solver: Solver,
                  sde: int | None) -> tuple[ImageConfig, int]:
    """The image's config (its history timed as BuildKit does), and how many of its
    layers are the base image's."""
    final = results[state.op.digest]
    history = list(state.base_history)
    for step in state.history:
        layer = results[step.op.digest].layer if step.op is not None else None
        record = solver.record_of(step.op) if layer is not None else None
        history.append(History(created=record.created if record else "",
                               created_by=step.created_by, comment=step.comment,
                               empty_layer=layer is None))
    history, created = history_times(history, len(state.base_history),
                                     None if sde is None else _rfc3339(sde))
    plat = state.platform
    config = ImageConfig(architecture=plat.architecture, os=plat.os, variant=plat.variant,
                         created=created, author=state.author, config=state.config,
                         diff_ids=tuple(r.diff_id for r in final.layers),
                         history=tuple(history))
    own_layers = sum(1 for h in history[len(state.base_history):] if not h.empty_layer)
    return config, max(0, len(final.layers) - own_layers)


def _export(definition: _Definition, store: Store, result: BuildResult,
            shown: StepProgress | None, attestations: Sequence[Predicate] = ()
            ) -> ExportReport:
    from ocibuild.exporter import export

    options = definition.options
    return export(result, definition.outputs, store, tags=options.tags,
                  compression=options.compression, annotations=definition.annotations,
                  push=options.push, progress=shown, attestations=attestations)


def _attestations(definition: _Definition, store: Store, target: Op, solver: Solver,
                  layers: Sequence[LayerRef], started: datetime) -> list[Predicate]:
    """The predicates --provenance, --sbom and --attest ask for (none by default), when
    some output holds them (docker and local outputs do not)."""
    outputs = definition.outputs
    if not definition.attest.any or outputs and not definition.to_push and not any(
            s.writes_manifest for s in outputs):
        return []
    from ocibuild import __version__
    from ocibuild.attest.capture import BuildRequest, frontend_args
    from ocibuild.build_attestations import make_attestations
    from ocibuild.oci.platform import host

    options = definition.options
    name, text = definition.dockerfile
    request = BuildRequest(
        frontend_args(options.build_args or {}, options.labels or {}, options.target),
        name, text, started, str(host()), *definition.context_git)
    return make_attestations(definition.attest, request, target=target, solver=solver,
                             store=store, layers=[ref.descriptor for ref in layers],
                             name=options.tags[0] if options.tags else "image",
                             creator=f"ocibuild-{__version__}")


def _export_caches(caches: BuildCaches | None, solver: Solver, target: Op
                   ) -> list[CacheExportReport]:
    if caches is None:
        return []
    from ocibuild.solver.solve import KEY_VERSION

    found = caches.export(lambda mode: solver.cache_records(target, mode), KEY_VERSION)
    caches.close()
    return found


def _load_and_write_files(definition: _Definition, store: Store, report: ExportReport
                          ) -> tuple[str, ...]:
    """With load, load the image into the docker daemon (return what it loaded); write
    --iidfile and --metadata-file."""
    from ocibuild.exporter.metadata import write_iidfile, write_metadata_file

    loaded: tuple[str, ...] = ()
    if definition.daemon is not None:
        from ocibuild.exporter.docker_daemon import load_image

        loaded = load_image(definition.daemon, store.layout, report.manifest_digest,
                            report.names)
    options = definition.options
    if options.iidfile:
        write_iidfile(Path(options.iidfile), report)
    if options.metadata_file:
        write_metadata_file(Path(options.metadata_file), report)
    return loaded


@dataclass(frozen=True)
class ReportParts:
    """What the stages after the solve made, for the report."""

    config: ImageConfig
    cache_exports: tuple[CacheExportReport, ...]
    explanations: tuple[Explanation, ...]
    pushed: tuple[str, ...]
    loaded: tuple[str, ...]
    signed: tuple[str, ...] = ()
    push_sent: bool = False


def _report(definition: _Definition, conv: Conversion, snap: Snapshotter, solver: Solver,
            results: Mapping[str, OpResult], caches: BuildCaches | None,
            report: ExportReport, parts: ReportParts) -> BuildReport:
    steps = [r for d, r in results.items() if d in solver.index]
    final = results[conv.target.op.digest]
    cache_use = None
    if (lookups := solver.cache_use()) is not None and caches is None:
        used, missed = lookups
        cache_use = CacheUse(
            used=tuple((r.key, r.layer.digest if r.layer else None, r.created) for r in used),
            missed=tuple(missed),
            blobs=(report.manifest_digest, report.config_digest,
                   *(r.layer.digest for r in used if r.layer),
                   *(slot.descriptor.digest for slot in final.layers)))
    notice = definition.chosen.notice
    return BuildReport(
        manifest_digest=report.manifest_digest, config_digest=report.config_digest,
        image_id=report.image_id, names=report.names, config=parts.config,
        warnings=([notice] if notice else []) + conv.warnings
        + (caches.warnings if caches else []),
        materialized=snap.materialized, steps=len(steps),
        cached_steps=sum(1 for r in steps if r.cached), export=report,
        cache_exports=parts.cache_exports, cache_explanations=parts.explanations,
        pushed=parts.pushed, push_sent=parts.push_sent, signed=parts.signed,
        loaded=parts.loaded,
        cache_use=cache_use, memo_possible=solver.memo_possible() and caches is None
        # a frontend's code is more than the memo sees; provenance has times
        and definition.graph is None and not definition.attest.any)


def _failing(shown: StepProgress | None) -> contextlib.AbstractContextManager[None]:
    return shown.failing() if shown is not None else contextlib.nullcontext()
