"""`ocibuild build`: the flags a `docker buildx build` user types."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import click

from ocibuild.cli.registry_flags import registry_connection_options
from ocibuild.cli.short_options import ShortOptionsCommand
from ocibuild.errors import OcibuildError, StepFailedError, UsageError, terminal_text

if TYPE_CHECKING:
    from ocibuild.builder import BuildReport
    from ocibuild.progress.events import Recorder, Sink
    from ocibuild.progress.modes import Renderer
    from ocibuild.rebuild_memo import Invocation
    from ocibuild.registry import RegistryOptions


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    import os

    out: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not key:
            raise UsageError(f"{what} {text!r}: expected KEY=VALUE")
        if not sep:  # docker takes the value from the environment
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def _registry_options(insecure: tuple[str, ...], registry_ca: tuple[str, ...],
                      authfile: str | None) -> RegistryOptions | None:
    """None when no registry flag is given: the registry client (slow to import) then
    loads only if a build really reaches a registry."""
    if not (insecure or registry_ca or authfile):
        return None
    from ocibuild.registry import RegistryOptions

    return RegistryOptions.build(insecure=insecure, ca_files=registry_ca, authfile=authfile)


@click.command("build", cls=ShortOptionsCommand)
@click.argument("context", type=click.Path(file_okay=False))
@click.option("-f", "--file", "dockerfile", help="The Dockerfile (default CONTEXT/Dockerfile).")
@click.option("--frontend", metavar="NAME",
              help="The frontend that reads the file: dockerfile, python (a build.py "
                   "defining build(ctx)) or one installed in the entry point group "
                   "ocibuild.frontends (default: its # syntax= directive, else "
                   "dockerfile).")
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image (repeatable).")
@click.option("--target", help="Build this stage (and what it needs) only.")
@click.option("--build-arg", "build_args", multiple=True, help="KEY=VALUE for an ARG.")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE label on the image.")
@click.option("-o", "--output", "outputs", multiple=True,
              help="type=oci|docker|local|image|registry|store[,KEY=VALUE...] "
                   "(default: the local store). Keys: dest=PATH (oci, docker, local); "
                   "tar=true|false (oci; docker: true only); name=REF[,REF] (not local; "
                   "instead of the -t names); push=true|false (image, store); for image, "
                   "store and oci: compression=gzip|zstd|"
                   "uncompressed, compression-level=N (gzip 0..9, zstd 0..22), "
                   "force-compression=true|false (convert base-image layers too), "
                   "oci-mediatypes=true|false, annotation[-manifest|-manifest-descriptor|"
                   "-index|-index-descriptor][[OS/ARCH]].KEY=VALUE. An unknown key is an "
                   "error.")
@click.option("--secret", "secrets", multiple=True, help="id=NAME,src=FILE or id=NAME,env=VAR.")
@click.option("--ssh", "ssh", multiple=True, help="default (forwards SSH_AUTH_SOCK) or ID=SOCKET.")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty", "rawjson", "json", "quiet"]),
              default="auto", show_default=True,
              help="auto: tty on a terminal, else plain; rawjson (or json): JSON lines.")
@click.option("--no-cache", is_flag=True, help="Run every step again.")
@click.option("--no-cache-filter", "no_cache_filter", multiple=True,
              help="Run the steps of this stage again (repeatable).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Steps run at once (default: CPUs).")
@click.option("--platform", help="Target platform (os/arch[/variant]); several, "
              "comma-separated, make one image index.")
@click.option("--snapshotter", type=click.Choice(["auto", "overlay", "native"]), default="auto",
              show_default=True)
@click.option("--iidfile", type=click.Path(dir_okay=False), help="Write the image ID here.")
@click.option("--metadata-file", "metadata_file", type=click.Path(dir_okay=False),
              help="Write buildx-style build metadata (JSON) here.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--cache-from", "cache_from", multiple=True,
              metavar="type=registry,ref=REF | type=local,src=DIR",
              help="Reuse the records of this cache (repeatable).")
@click.option("--cache-to", "cache_to", multiple=True,
              metavar="type=registry,ref=REF[,mode=min|max] | type=local,dest=DIR",
              help="Write the build's cache here (repeatable).")
@click.option("--explain-cache", "explain_cache", is_flag=True,
              help="For every step that missed the cache, print what changed.")
@click.option("--build-context", "build_contexts", multiple=True,
              metavar="NAME=docker-image://REF|oci-layout://PATH[:TAG]|DIR",
              help="An extra context FROM NAME / --from=NAME use (repeatable).")
@click.option("--context-modes", "context_modes", type=click.Choice(["keep", "git"]),
              default="keep", show_default=True,
              help="keep: context files enter cache keys and the image with their modes "
                   "on disk (as BuildKit). git: as git records them (files 0644, or 0755 "
                   "when executable; directories 0755), so checkouts made under "
                   "different umasks share the cache. --chmod still wins.")
@click.option("--push", is_flag=True, help="Push the image to every -t name.")
@click.option("--pull", is_flag=True, help="Check the registry for a newer base image.")
@click.option("--allow", "allow", multiple=True, metavar="ENTITLEMENT",
              help="Grant an entitlement: network.host (RUN --network=host) or "
                   "security.insecure (RUN --security=insecure). Repeatable, or "
                   "comma-separated.")
@click.option("--network", type=click.Choice(["default", "none", "host"]), default="default",
              show_default=True,
              help="The network mode of RUN steps (a RUN's own --network=none|host "
                   "wins); host needs --allow network.host.")
@click.option("--isolation", type=click.Choice(["auto", "userns", "chroot"]), default="auto",
              show_default=True,
              help="How RUN steps are isolated: userns (user namespaces), chroot (root "
                   "only), or auto: userns, falling back to chroot when running as root "
                   "where namespaces are refused (with a notice).")
@click.option("--add-host", "add_hosts", multiple=True, metavar="HOST:IP",
              help="Add HOST:IP (or HOST=IP) to the /etc/hosts of RUN steps "
                   "(repeatable; host-gateway is not supported).")
@click.option("--annotation", "annotations", multiple=True, metavar="[TYPE:]KEY=VALUE",
              help="Annotate the image of every output that writes one (TYPE: manifest "
                   "(the default), manifest-descriptor, or several comma-separated, each "
                   "with an optional [OS/ARCH]; index and index-descriptor need a "
                   "multi-platform image; repeatable).")
@click.option("--shm-size", "shm_size", metavar="BYTES",
              help="Size of /dev/shm in RUN steps (e.g. 128m; default 64m).")
@click.option("--ulimit", "ulimits", multiple=True, metavar="TYPE=SOFT[:HARD]",
              help="Resource limit of RUN steps, e.g. nofile=1024:2048 (repeatable; "
                   "-1 is unlimited).")
@click.option("--provenance", metavar="true|false|mode=min|mode=max",
              help="Attach SLSA provenance v1 as BuildKit does (the image becomes an index "
                   "with an attestation manifest); true is mode=min, max adds the build "
                   "args and secret ids. false: none (the default).")
@click.option("--sbom", metavar="true|false",
              help="Attach an SPDX 2.3 SBOM of the image's dpkg, apk and Python packages "
                   "(default: none).")
@click.option("--attest", "attest", multiple=True,
              metavar="type=provenance|sbom[,mode=min|max][,builder-id=URL][,disabled=true]",
              help="An attestation in buildx's form (repeatable; the last of a type wins).")
@click.option("--load", is_flag=True,
              help="Also load the image into the docker daemon at DOCKER_HOST (or the "
                   "default socket). The local store is always written.")
@click.option("--sign-key", "sign_key", type=click.Path(dir_okay=False), metavar="KEY",
              help="Sign every pushed name with this private key (cosign's format; "
                   "passphrase from $OCIBUILD_KEY_PASSWORD or $COSIGN_PASSWORD, else "
                   "asked). Needs --push.")
@registry_connection_options
@click.pass_context
def build_cmd(ctx: click.Context, context: str, dockerfile: str | None, tags: tuple[str, ...],
              target: str | None, build_args: tuple[str, ...], labels: tuple[str, ...],
              outputs: tuple[str, ...], secrets: tuple[str, ...], ssh: tuple[str, ...],
              progress: str, no_cache: bool, no_cache_filter: tuple[str, ...],
              jobs: int | None, platform: str | None, snapshotter: str, iidfile: str | None,
              metadata_file: str | None, quiet: bool, cache_from: tuple[str, ...],
              cache_to: tuple[str, ...], explain_cache: bool, build_contexts: tuple[str, ...],
              context_modes: str, push: bool, pull: bool, allow: tuple[str, ...], network: str,
              isolation: str, add_hosts: tuple[str, ...], annotations: tuple[str, ...],
              shm_size: str | None, ulimits: tuple[str, ...], provenance: str | None,
              sbom: str | None, attest: tuple[str, ...], load: bool, sign_key: str | None,
              insecure: tuple[str, ...], registry_ca: tuple[str, ...],
              authfile: str | None, frontend: str | None = None) -> None:
    """Build an image from a Dockerfile (or another definition) and a context directory."""
    from ocibuild.attestations import requested_attestations
    from ocibuild.build_options import BuildOptions
    from ocibuild.builder import build, load_build
    from ocibuild.progress import modes

    rebuild = ctx.obj.get("rebuild")
    mode = "quiet" if quiet else modes.resolve(progress, sys.stderr)
    quiet = mode == "quiet"  # --progress=quiet prints the image ID alone too, as -q
    if mode not in ("plain", "quiet", "tty"):  # JSON lines carry the build's own times
        rebuild = None
    # plain text is kept as printed; the live display's last frame is kept as its steps
    err = _Copying(sys.stderr) if rebuild is not None and mode != "tty" else sys.stderr
    options = BuildOptions(
        dockerfile=dockerfile, tags=tags, target=target,
        build_args=_pairs(build_args, "--build-arg"), labels=_pairs(labels, "--label"),
        outputs=outputs, root=ctx.obj.get("root"), jobs=jobs, no_cache=no_cache,
        no_cache_filter=no_cache_filter, secrets=secrets, ssh=ssh, platform=platform,
        snapshotter=snapshotter, iidfile=iidfile,
        metadata_file=metadata_file, cache_from=cache_from, cache_to=cache_to,
        explain_cache=explain_cache, build_contexts=build_contexts,
        context_modes=context_modes, push=push, pull=pull,
        registry=_registry_options(insecure, registry_ca, authfile), allow=allow,
        network=network, isolation=isolation, add_hosts=add_hosts, annotations=annotations,
        shm_size=shm_size, ulimits=ulimits,
        attest=requested_attestations(provenance, sbom, attest), load=load,
        sign_key=sign_key, frontend=frontend)
    if sign_key or any("sign-key=" in text for text in cache_to):  # before the display
        from ocibuild.signing.keys import ask_passphrase

        ask_passphrase("passphrase for the signing key")
    renderer = modes.open_renderer(mode, err)
    # the memo's second build takes the first's context checksums: the memo rests on
    # the context as it was before the first began
    from ocibuild.solver.checksum import KeptChecksums

    kept = KeptChecksums()
    reuse = kept.active if rebuild is not None else contextlib.nullcontext
    loaded = None
    try:
        if "-" in (context, dockerfile):
            from ocibuild.cli.stdin_inputs import stdin_inputs

            with stdin_inputs(context, dockerfile, sys.stdin.buffer) as (context, dockerfile):
                report = build(context, options, dockerfile=dockerfile, progress=renderer)
        else:
            with reuse():
                loaded = load_build(context, options)
                report = loaded.run(renderer)
    except StepFailedError as exc:
        summary = _stop(renderer, failed=True)
        if summary:
            sys.stderr.write("\n" + summary + "\n")
        _write_excerpt(exc)
        raise OcibuildError(f"failed to solve: {exc.message}") from None
    except OcibuildError as exc:
        _stop(renderer)
        from ocibuild.frontend.dockerfile.errors import DockerfileError

        if isinstance(exc, DockerfileError):
            raise OcibuildError(exc.render(), exit_code=exc.exit_code) from None
        _write_excerpt(exc)
        raise
    finally:  # an interrupt too: the live display ends and shows the cursor again
        _stop(renderer)
    closing_err, closing_out = _closing_lines(report, quiet)
    if renderer is not None:
        closing_err = renderer.closing_text(closing_err)
    sys.stderr.write(closing_err)
    sys.stdout.write(closing_out)
    sys.stdout.flush()
    if rebuild is not None and loaded is not None:
        steps = getattr(renderer, "finished_steps", None)
        printed = closing_err if steps else err.text() + closing_err  # type: ignore[union-attr]
        again = loaded

        def build_again(sink: Sink | None) -> BuildReport:
            with reuse():
                return again.run(sink if renderer else None)

        _remember(rebuild, report, printed, closing_out, quiet, build_again,
                  frame=steps() if steps else None)


def _write_excerpt(exc: OcibuildError) -> None:
    """The Dockerfile lines of the step that failed, above the error (as buildx)."""
    if exc.location is not None:
        sys.stderr.write(exc.location.excerpt() + "\n")


def _stop(renderer: Renderer | None, failed: bool = False) -> str:
    """End the display (before anything else is printed); its failure report."""
    if renderer is None:
        return ""
    renderer.stop()
    return renderer.summary() if failed else ""


def _closing_lines(report: BuildReport, quiet: bool) -> tuple[str, str]:
    """What `build` prints once the build is done: (stderr text, stdout text)."""
    err = [*report.warnings, *(e.render() for e in report.cache_explanations)]
    for cache in report.cache_exports:
        err.append(f"cache written to {cache.destination} ({cache.manifest_digest}): "
                   f"{cache.records} records, {cache.layers} layers ({cache.uploaded} sent, "
                   f"{cache.mounted} mounted, {cache.skipped} already there)"
                   + (", signed" if cache.signed else ""))
    if not quiet:
        names = ", ".join(report.names)
        err.append(f"writing image {report.manifest_digest}" + (f" ({names})" if names else ""))
        err += [f"pushed {pushed}" for pushed in report.pushed]
        err += [f"signed {signed}" for signed in report.signed]
        err += [f"loaded {loaded} into the docker daemon" for loaded in report.loaded]
    # warnings and explanations quote the Dockerfile and the registries
    return terminal_text("".join(line + "\n" for line in err)), report.image_id + "\n"


class _Copying:
    """A text stream that writes through to another and keeps a copy."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return self._out.write(text)

    def flush(self) -> None:
        self._out.flush()

    def text(self) -> str:
        return "".join(self._parts)


def _remember(rebuild: Invocation, report: BuildReport, printed_err: str, printed_out: str,
              quiet: bool, build_again: Callable[[Sink | None], BuildReport],
              frame: list[tuple[str, str]] | None = None) -> None:
    """Leave a rebuild memo, so that the same command answers at once next time. The
    memo holds what a fully cached build printed against the store names it saw (with
    the live display: the steps of its last frame, then what followed); when this build
    ran steps (or changed those names, e.g. a new tag, or pushed something: a push
    again prints no uploads), it builds once more (all from the cache now, in a few
    milliseconds) to get that."""
    from ocibuild import rebuild_memo

    if not report.memo_possible:  # building again could not make one either
        return
    index = rebuild_memo.index_digest(rebuild.root)
    if report.cache_use is None or index != rebuild.index or report.push_sent:
        import io

        from ocibuild.progress.events import Recorder
        from ocibuild.progress.plain import PlainRenderer

        buffer = io.StringIO()
        recorder = Recorder()
        sink = None if quiet else recorder if frame is not None else PlainRenderer(buffer)
        again = build_again(sink)
        if again.manifest_digest != report.manifest_digest or again.push_sent \
                or rebuild_memo.index_digest(rebuild.root) != index:
            return
        closing_err, printed_out = _closing_lines(again, quiet)
        printed_err = buffer.getvalue() + closing_err
        if frame is not None:
            frame = _frame_steps(recorder)
        report = again
    use = report.cache_use
    if use is None:
        return
    rebuild_memo.remember(rebuild, index=index, used=use.used, missed=use.missed,
                          blobs=use.blobs, stderr=printed_err, stdout=printed_out,
                          frame=frame, pushed=report.pushed)


def _frame_steps(recorder: Recorder) -> list[tuple[str, str]]:
    """(state, name) of each step a build's events showed, in order: the live
    display's last frame (every step of a fully cached build is "cached")."""
    states: dict[int, tuple[str, str]] = {}
    for event in recorder.events:
        if event.kind in ("cached", "done"):
            states[event.index] = (event.kind, event.name)
        else:
            states.setdefault(event.index, ("running", event.name))
    return list(states.values())
