from __future__ import annotations

from ocibuild.graph import ContextSource, CopyOp, ExecOp, ImageSource, Mount, ScratchSource, walk

BASE = ImageSource(ref="busybox:latest", manifest_digest="sha256:" + "a" * 64,
                   platform="linux/amd64")


def test_digest_is_deterministic_and_ignores_descriptions() -> None:
    a = ExecOp(BASE, ("sh", "-c", "echo a"), description="[a 2/2] RUN echo a")
    b = ExecOp(BASE, ("sh", "-c", "echo a"), description="another name")
    assert a.digest == b.digest
    assert a == b and len({a, b}) == 1


def test_digest_changes_with_any_field_or_input() -> None:
    a = ExecOp(BASE, ("sh", "-c", "echo a"))
    assert a.digest != ExecOp(BASE, ("sh", "-c", "echo b")).digest
    assert a.digest != ExecOp(BASE, ("sh", "-c", "echo a"), env=("A=1",)).digest
    assert a.digest != ExecOp(ScratchSource(), ("sh", "-c", "echo a")).digest


def test_context_location_is_not_in_the_digest() -> None:
    # the op names the context, never its path on disk: a fresh clone elsewhere hits
    copy1 = CopyOp(BASE, ContextSource(), ("a.txt",), "/a.txt")
    copy2 = CopyOp(BASE, ContextSource(), ("a.txt",), "/a.txt")
    assert copy1.digest == copy2.digest
    assert "/tmp" not in str(copy1.spec())


def test_inputs_include_mount_sources_and_walk_orders_inputs_first() -> None:
    stage_a = ExecOp(BASE, ("true",), description="a")
    stage_b = ExecOp(BASE, ("false",), description="b")
    run = ExecOp(stage_a, ("cat", "/m/x"),
                 mounts=(Mount("bind", "/m", source=stage_b), Mount("cache", "/c", id="c")))
    assert run.inputs == (stage_a, stage_b)
    order = walk(run)
    assert order.index(BASE) < order.index(stage_a) < order.index(run)
    assert order.index(stage_b) < order.index(run)
    assert len(order) == 4
    assert walk(run) == order


def test_a_run_in_the_sandbox_keeps_the_digest_it_had_before_the_security_field() -> None:
    """`security` is left out of the digest while it is the default "sandbox", so existing
    cache keys stay valid; the digests below were computed before the field existed."""
    plain = ExecOp(BASE, ("sh", "-c", "echo a"))
    assert "security" not in plain.spec()
    assert plain.digest == (
        "sha256:e7e5b6e3971cb8133dfb74c04f80bf259d4288d8c3fc6ee470e488584392733c")
    full = ExecOp(BASE, ("sh", "-c", "echo a"), env=("A=1",), cwd="/w", user="1:1",
                  network="none", mounts=(Mount("cache", "/c", id="c"),))
    assert full.digest == (
        "sha256:0685d39d57f230d54b9728a2c8a458030c5540f9637c2c532e3d8a810de95e49")


def test_an_insecure_run_has_its_own_digest() -> None:
    plain = ExecOp(BASE, ("sh", "-c", "echo a"))
    insecure = ExecOp(BASE, ("sh", "-c", "echo a"), security="insecure")
    assert insecure.spec()["security"] == "insecure"
    assert insecure.digest != plain.digest
    assert ExecOp(BASE, ("sh", "-c", "echo a"), security="sandbox").digest == plain.digest


def test_step_options_are_in_the_digest_only_when_given() -> None:
    """--add-host, --shm-size and --ulimit change a RUN's digest (so its cache key); not
    given, the RUN keeps the digest pinned above."""
    plain = ExecOp(BASE, ("sh", "-c", "echo a"))
    given = ExecOp(BASE, ("sh", "-c", "echo a"), extra_hosts=(("db", "10.1.2.3"),),
                   shm_size=16 << 20, ulimits=(("nofile", 100, 200),))
    assert not {"extra_hosts", "shm_size", "ulimits"} & set(plain.spec())
    assert given.spec()["extra_hosts"] == [["db", "10.1.2.3"]]
    digests = {plain.digest, given.digest}
    for changed in ({"extra_hosts": (("db", "10.1.2.4"),)}, {"shm_size": 17 << 20},
                    {"ulimits": (("nofile", 100, 201),)}):
        fields = {"extra_hosts": given.extra_hosts, "shm_size": given.shm_size,
                  "ulimits": given.ulimits, **changed}
        digests.add(ExecOp(BASE, ("sh", "-c", "echo a"), **fields).digest)
    assert len(digests) == 5
