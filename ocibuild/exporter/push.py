"""The push output: each image an output marks push=true (or `--push`) goes to the
registry under its names, after the other outputs are written. The pushes to make are
in the `ExportReport` (see `exporter._pushed_outputs`); their bytes are shown under the
"exporting to image" step.

`PushConnections` opens the way to the registries while the build runs: a push of an
image the registry already holds is one HEAD of the manifest, after the ping (`GET
/v2/`, which learns the scheme and the auth challenge) and, for a registry with
tokens, the push token of the repository. Those, with the registry client's imports
and for https the TLS handshakes, need nothing the build makes: a thread does them at
once (the build's own work is mostly reading the context, whose stat calls leave the
interpreter free). Their failure is never reported as such: a push that starts while
they are still under way waits for them and reports it (it just happened, and asking
again would double a timeout); a push that starts after they ended asks again, as it
always did.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocibuild.errors import OcibuildError

if TYPE_CHECKING:
    from ocibuild.cache.store import Store
    from ocibuild.exporter.results import ExportReport
    from ocibuild.progress.transfer import StepProgress
    from ocibuild.reference import Reference
    from ocibuild.registry.client import ClientPool
    from ocibuild.registry.options import RegistryOptions


class PushConnections:
    """The registry clients of a build's pushes, pinged (and given the push token of
    each repository) in a thread from the start. Use as a context manager: leaving it
    closes their connections."""

    def __init__(self, names: Sequence[str], options: RegistryOptions | None) -> None:
        self._names = list(names)
        self._options = options
        self._pool: ClientPool | None = None
        self._error: OcibuildError | None = None
        self._thread: threading.Thread | None = None
        if self._names:
            self._thread = threading.Thread(target=self._connect, name="push-connect",
                                            daemon=True)
            self._thread.start()

    def _connect(self) -> None:
        from ocibuild.registry import ClientPool, parse_reference
        from ocibuild.registry.client import push_scope

        pool = ClientPool(self._options)
        self._pool = pool
        try:
            first: dict[tuple[str, str], Reference] = {}
            for name in self._names:
                ref = parse_reference(name)
                first.setdefault((ref.registry, ref.repository), ref)
            for (registry, repository), ref in first.items():
                pool.get(registry).prepare([push_scope(repository)], f"push {ref}")
        except OcibuildError as exc:
            self._error = exc

    def clients(self) -> ClientPool | None:
        """The prepared clients (None when nothing is pushed). Raises the failure of
        their preparing when it was still under way at this call."""
        if self._thread is None:
            return None
        if self._thread.is_alive():
            self._thread.join()
            if self._error is not None:
                raise self._error
        return self._pool

    def __enter__(self) -> PushConnections:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None and not self._thread.is_alive() and self._pool:
            self._pool.close()


@dataclass(frozen=True)
class Pushed:
    """What a build's pushes did."""

    references: tuple[str, ...] = ()  # name@digest of each name pushed
    sent: bool = False  # a blob or a manifest went up (False: every name held its image)


def push_images(report: ExportReport, store: Store, registry: RegistryOptions | None,
                progress: StepProgress | None,
                connections: PushConnections | None = None) -> Pushed:
    """Push every image of `report.pushes` from the store. Raises a `RegistryError`
    when a registry refuses. `connections`: clients made ahead (`PushConnections` of the
    same names and options)."""
    if not report.pushes:
        return Pushed()
    from ocibuild.registry import push_names

    clients = connections.clients() if connections is not None else None
    references: list[str] = []
    sent = False
    for image, image_names in report.pushes:
        one = push_names(store.layout, image, image_names, options=registry, store=store,
                         progress=progress, clients=clients)
        references += one.references
        # blobs go up only when the first name did not hold the image: a manifest put
        sent = sent or one.manifests_present < len(one.references)
    return Pushed(tuple(references), sent)
