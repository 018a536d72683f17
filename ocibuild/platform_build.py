"""Multi-platform builds: `--platform linux/amd64,linux/arm64` makes one image per
platform and writes them as one image index.

As BuildKit does, each platform is its own conversion of the Dockerfile (its
TARGETPLATFORM, its base images picked from their indexes), and all of them are solved
in one schedule, so the platforms' steps run side by side within `--jobs`. An op two
platforms share (a `FROM --platform=$BUILDPLATFORM` stage, a context file copied into
scratch) has the same digest and cache key in both graphs, so the solver runs it once.

The steps around the solve (conversion, image config, export step, files, report)
are `builder.py`'s own, shared rather than repeated: only the loop over platforms,
the index written by `exporter/platforms.py` and the cache of all platforms differ.

A step of another architecture runs under the kernel's binfmt_misc emulation
(`sandbox/binfmt.py`); the platforms of the RUN steps that will run (those not
cached) are checked before the first step starts, so a build without a handler fails
at once instead of after its native half has run, and a fully cached rebuild needs no
handler. The single-platform build (`builder.build`) does the same check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ocibuild.builder import (
    BuildReport,
    ReportParts,
    _attestations,
    _convert,
    _Definition,
    _export_step,
    _failing,
    _image_config,
    _load_and_write_files,
    _report,
    _solve,
)
from ocibuild.graph import CopyOp, ExecOp, MkdirOp
from ocibuild.oci.platform import Platform, host

if TYPE_CHECKING:
    from ocibuild.cache.records import CacheRecord
    from ocibuild.cache.remote import BuildCaches, CacheExportReport
    from ocibuild.frontend.dockerfile.convert import Conversion
    from ocibuild.solver.solve import Solver


def exec_platforms(conversions: Sequence[Conversion]) -> dict[str, Platform]:
    """The platform whose programs each RUN step of these graphs executes (by op
    digest): its stage's own, a base image's platform, which may differ from the one
    asked for."""
    found: dict[str, Platform] = {}
    for conv in conversions:
        for state in conv.stages.values():
            op = state.op
            while isinstance(op, ExecOp | CopyOp | MkdirOp):
                if isinstance(op, ExecOp):
                    found.setdefault(op.digest, state.platform)
                op = op.root
    return found


def emulation_check(conversions: Sequence[Conversion]
                    ) -> Callable[[Sequence[ExecOp]], None]:
    """The solver's check of the RUN steps about to run (cached ones never run): a
    SandboxError naming the first platform that runs neither natively nor through
    binfmt_misc, and how to register a handler."""
    platforms = exec_platforms(conversions)

    def check(running: Sequence[ExecOp]) -> None:
        wanted = dict.fromkeys(platforms[op.digest] for op in running
                               if op.digest in platforms)
        here = host().normalized()
        if all(p.normalized() == here for p in wanted):
            return  # this machine's own: nothing to look up in binfmt_misc
        from ocibuild.sandbox.binfmt import check_runnable

        check_runnable(wanted)

    return check


def _merged(conversions: Sequence[Conversion], platforms: Sequence[Platform]) -> Conversion:
    """One Conversion standing for all: every op's step name, prefixed with its stage's
    platform as BuildKit shows them (`[linux/arm64 build 2/3] RUN ...`); an op shared by
    platforms keeps the first one's name."""
    names: dict[str, str] = {}
    stage_of_op: dict[str, str] = {}
    for conv, platform in zip(conversions, platforms, strict=True):
        stage_platform = {(s.name or f"stage-{s.index}"): s.platform
                          for s in conv.stages.values()}
        for digest, name in conv.names.items():
            if digest in names:
                continue
            stage = conv.stage_of_op.get(digest, "")
            shown = stage_platform.get(stage, platform)
            names[digest] = (f"[{shown} {name[1:]}" if name.startswith("[")
                             else f"[{shown}] {name}")
        for digest, stage in conv.stage_of_op.items():
            stage_of_op.setdefault(digest, stage)
    warnings = list(dict.fromkeys(w for conv in conversions for w in conv.warnings))
    return replace(conversions[0], names=names, stage_of_op=stage_of_op, warnings=warnings)


def build_platforms(definition: _Definition) -> BuildReport:
    """`builder.build` for several platforms: one image each, written as an index."""
    from ocibuild import failed_build
    from ocibuild.build_sources import ImageSources
    from ocibuild.cache.store import Store
    from ocibuild.exporter import BuildResult
    from ocibuild.exporter.platforms import check_outputs, export_platforms
    from ocibuild.exporter.push import push_images
    from ocibuild.idspace import userns
    from ocibuild.signing.build import load_build_key, sign_pushed

    options = definition.options
    check_outputs(definition.outputs, load=definition.daemon is not None)
    sign_key = load_build_key(options.sign_key, bool(definition.to_push))
    started = datetime.now(UTC)
    store = Store.open(options.root)
    resolve = ImageSources(store, registry=options.registry, contexts=definition.named_contexts,
                           pull=options.pull, progress=options.progress)
    with store.lock(), userns.session() as session, failed_build.cleaned_up(store), \
            contextlib.closing(resolve):
        conversions = []
        for platform in definition.platforms:
            one = replace(definition, inputs=replace(definition.inputs, platform=platform))
            conv, snap = _convert(one, store, session, resolve)
            conversions.append(conv)
        merged = _merged(conversions, definition.platforms)
        solver, results, caches = _solve(definition, store, snap, merged, resolve,
                                         [c.target.op for c in conversions],
                                         emulation_check(conversions))
        images = []
        for conv in conversions:
            config, base_layers = _image_config(conv.target, results, solver,
                                                definition.source_date_epoch)
            images.append(BuildResult(config, results[conv.target.op.digest].layers,
                                      base_layers))
        shown = _export_step(options.progress, solver.index.values(), definition.outputs,
                             bool(definition.to_push), solver.export_shown)
        with _failing(shown):
            attestations = [_attestations(definition, store, conv.target.op, solver,
                                          image.layers, started)
                            for conv, image in zip(conversions, images, strict=True)]
            report = export_platforms(
                images, definition.outputs, store, tags=options.tags,
                compression=options.compression, annotations=definition.annotations,
                push=options.push, progress=shown, attestations=attestations)
        cache_exports = _export_caches(caches, solver, conversions)
        explanations = solver.explain_misses() if options.explain_cache else []
        with _failing(shown):
            pushes = push_images(report, store, options.registry, shown)
            signed = sign_pushed(pushes.references, sign_key, options.registry)
        if shown is not None:
            shown.done()
        loaded = _load_and_write_files(definition, store, report)
        snap.finish()
    built = _report(definition, merged, snap, solver, results, caches, report, ReportParts(
        config=images[0].config, cache_exports=tuple(cache_exports),
        explanations=tuple(explanations), pushed=pushes.references,
        push_sent=pushes.sent, loaded=loaded, signed=signed))
    # the rebuild memo knows one image's blobs: a multi-platform build leaves none
    return replace(built, cache_use=None, memo_possible=False)


def _export_caches(caches: BuildCaches | None, solver: Solver,
                   conversions: Sequence[Conversion]) -> list[CacheExportReport]:
    """Every platform's records in one cache: their keys differ (each rests on its own
    base image), and a build of any one platform finds its own among them."""
    if caches is None:
        return []
    from ocibuild.solver.solve import KEY_VERSION

    def records(mode: str) -> list[CacheRecord]:
        found: dict[str, CacheRecord] = {}
        for conv in conversions:
            for record in solver.cache_records(conv.target.op, mode):
                found.setdefault(record.key, record)
        return list(found.values())

    exported = caches.export(records, KEY_VERSION)
    caches.close()
    return exported
