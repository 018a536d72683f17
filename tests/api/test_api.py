"""The public API as a program uses it, run as the unprivileged user: each failure is
an OcibuildError subclass carrying what a caller needs (a step's exit status and
output, a registry's HTTP status, a Dockerfile's line); pull, push, tag, images and
import_rootfs work on the store and the test registry, with progress events."""

from __future__ import annotations

from tests.api.api_runner import api_result
from tests.build.conftest import Builder, write_context
from tests.registry.conftest import BaseImages, skopeo_pull_digest
from tests.registry.test_build_integration import push_base
from tests.support.registry_server import RegistryServer, free_port

# each case: a call that must fail; the script reports what it raised
ERROR_CASES = """
import json, sys
import ocibuild

registry = sys.argv[1]
insecure = ocibuild.RegistryOptions.build(insecure=[registry, "127.0.0.1:%(closed)d"])
cases = {
    "build platform": lambda: ocibuild.build("ok", platform="linux"),
    "context modes": lambda: ocibuild.build("ok", context_modes="umask"),
    "pull platform": lambda: ocibuild.pull("busybox", platform="linux/"),
    "import platform": lambda: ocibuild.import_rootfs("ok", "x:1", platform="amd64"),
    "bad name": lambda: ocibuild.tag("busybox", "Not A Name"),
    "bad filter": lambda: ocibuild.images(filters=["size=3"]),
    "dockerfile": lambda: ocibuild.build("ok", dockerfile="bad.Dockerfile"),
    "step": lambda: ocibuild.build("ok", dockerfile="fails.Dockerfile"),
    "sandbox": lambda: ocibuild.build("ok", isolation="chroot"),
    "store": lambda: ocibuild.images(root="a-file"),
    "no image": lambda: ocibuild.push("nosuch:1", ["127.0.0.1:1/x:1"]),
    "no image to tag": lambda: ocibuild.tag("nosuch:1", "other:1"),
    "registry 404": lambda: ocibuild.pull(registry + "/nobody/here:1", registry=insecure),
    "unreachable": lambda: ocibuild.pull("127.0.0.1:%(closed)d/x:1", registry=insecure),
}
out = {}
for case, call in cases.items():
    try:
        call()
    except Exception as exc:
        out[case] = {"type": type(exc).__name__,
                     "ocibuild": isinstance(exc, ocibuild.OcibuildError),
                     "kinds": [c.__name__ for c in type(exc).__mro__],
                     "message": str(exc),
                     **{k: getattr(exc, k) for k in ("returncode", "tail", "name", "status",
                                                     "line") if hasattr(exc, k)}}
    else:
        out[case] = None
print(json.dumps(out))
"""


def test_every_failure_is_an_ocibuild_error_saying_what_a_caller_needs(
        builder: Builder, http_registry: RegistryServer) -> None:
    write_context(builder.tmp / "ok", {
        "Dockerfile": "FROM busybox\nRUN true\n",
        "bad.Dockerfile": "FROM busybox\nRUN true\nCOPY\n",
        "fails.Dockerfile": "FROM busybox\nRUN echo one; echo two >&2; exit 7\n",
    }, builder.user)
    (builder.tmp / "a-file").write_text("not a store\n")
    got = api_result(builder, ERROR_CASES % {"closed": free_port()}, http_registry.host)
    assert all(r is not None for r in got.values()), [c for c, r in got.items() if r is None]
    assert {c: r["ocibuild"] for c, r in got.items()} == {c: True for c in got}

    for case in ("build platform", "context modes", "pull platform", "import platform",
                 "bad name", "bad filter"):
        assert "UsageError" in got[case]["kinds"], (case, got[case])
    assert "platform" in got["build platform"]["message"]
    assert got["context modes"]["message"] == "--context-modes umask: expected keep or git"

    assert got["dockerfile"]["type"] == "DockerfileError"
    assert got["dockerfile"]["line"] == 3

    step = got["step"]
    assert step["type"] == "StepFailedError"
    assert step["returncode"] == 7
    assert step["tail"][-2:] == ["one", "two"]
    assert "RUN echo one" in step["name"]

    assert got["sandbox"]["type"] == "SandboxError"
    assert "StoreError" in got["store"]["kinds"]
    assert got["no image"]["type"] == got["no image to tag"]["type"] == "ImageNotFoundError"

    assert "RegistryError" in got["registry 404"]["kinds"]
    assert got["registry 404"]["status"] == 404
    assert "RegistryError" in got["unreachable"]["kinds"]
    assert got["unreachable"]["status"] is None



ROUND_TRIP = """
import json, sys
import ocibuild

registry = sys.argv[1]
options = ocibuild.RegistryOptions.build(insecure=[registry])
events = []
pulled = ocibuild.pull(registry + "/library/busybox:latest", registry=options,
                       progress=events.append)
listed = ocibuild.images(filters=["reference=*/library/busybox"])
names = ocibuild.tag(pulled.id, registry + "/api/copy:1")
pushes = []
first = ocibuild.push(registry + "/api/copy:1", registry=options, progress=pushes.append)
again = ocibuild.push(registry + "/api/copy:1", registry=options)
print(json.dumps({
    "pulled": [pulled.name, pulled.digest, pulled.id],
    "pull events": [[e.kind, e.text, e.current, e.total, e.completed] for e in events],
    "listed": [[i.name, i.digest] for i in listed],
    "tagged": names,
    "first": [first.digest, first.references, first.uploaded, first.mounted, first.skipped],
    "push kinds": sorted({e.kind for e in pushes}),
    "again": [again.uploaded, again.mounted, again.skipped],
}))
"""


def test_pull_tag_push_round_trip_with_progress(builder: Builder, http_registry: RegistryServer,
                                                images: BaseImages) -> None:
    """busybox pulled into an empty store, shown by images(), tagged with a new
    repository and pushed there: skopeo reads the same digest; pushed again, nothing
    is uploaded. The pull reports each blob's bytes."""
    host = http_registry.host
    push_base(http_registry, images, f"{host}/library/busybox:latest", builder.tmp)
    builder.root = builder.tmp / "empty-store"
    got = api_result(builder, ROUND_TRIP, host)

    name, digest, image_id = got["pulled"]
    assert name == f"{host}/library/busybox:latest"
    assert digest == images.base.digest
    assert got["listed"] == [[name, digest]]
    assert got["tagged"] == [f"{host}/api/copy:1"]

    kinds = [e[0] for e in got["pull events"]]
    assert kinds[0] == "started" and kinds[-1] == "done"
    layer = next(e for e in got["pull events"]
                 if e[0] == "status" and e[1].startswith("sha256:") and e[4])
    assert layer[2] == layer[3] > 0  # current == total bytes when complete

    pushed_digest, references, uploaded, mounted, skipped = got["first"]
    assert pushed_digest == digest
    assert references == [f"{host}/api/copy:1@{digest}"]
    assert uploaded + mounted + skipped >= 2  # the layer and the config
    assert {"started", "done"} <= set(got["push kinds"])
    assert got["again"][0] == 0 and got["again"][2] >= 2
    assert skopeo_pull_digest(http_registry, f"{host}/api/copy:1", builder.tmp) == digest


IMPORT = """
import json, sys
import ocibuild

made = ocibuild.import_rootfs("tree", "imported:1", compression="zstd")
report = ocibuild.build("ctx", tags=["uses-import:1"])
print(json.dumps({"made": [made.name, made.repository, made.tag, made.size],
                  "listed": [i.name for i in ocibuild.images()],
                  "dangling": [i.name for i in ocibuild.images(filters=["dangling=true"])],
                  "built": list(report.names)}))
"""


def test_import_rootfs_makes_an_image_a_build_can_use(builder: Builder) -> None:
    write_context(builder.tmp / "tree", {"etc/motd": "imported\n"}, builder.user)
    write_context(builder.tmp / "ctx", {
        "Dockerfile": "FROM imported:1 AS tree\nFROM busybox\n"
                      "COPY --from=tree /etc/motd /motd\nRUN grep -x imported /motd\n",
    }, builder.user)
    got = api_result(builder, IMPORT)
    assert got["made"][:3] == ["docker.io/library/imported:1", "imported", "1"]
    assert got["made"][3] > 0
    assert "docker.io/library/imported:1" in got["listed"]
    assert "docker.io/library/uses-import:1" in got["listed"]
    assert got["dangling"] == []
    assert got["built"] == ["docker.io/library/uses-import:1"]
