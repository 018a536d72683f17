"""RUN --network and --security in the graph, the build's default network mode, and the
entitlements they need (checked while converting, at the instruction)."""

from __future__ import annotations

import hashlib

import pytest

from ocibuild import entitlements
from ocibuild.errors import UsageError
from ocibuild.frontend.dockerfile.convert import BuildInputs, Conversion, convert
from ocibuild.frontend.dockerfile.errors import DockerfileError
from ocibuild.frontend.dockerfile.parser import parse
from ocibuild.graph import ExecOp, Op, walk
from ocibuild.oci.config import ImageConfig
from ocibuild.oci.platform import Platform

AMD64 = Platform("linux", "amd64")
ALL = frozenset(entitlements.KNOWN)


def _image(ref: str, platform: Platform) -> tuple[str, ImageConfig]:
    digest = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
    return digest, ImageConfig(architecture="amd64", os="linux", config={"Env": ["PATH=/bin"]})


def _convert(text: str, network: str = "default",
             allow: frozenset[str] = frozenset()) -> Conversion:
    inputs = BuildInputs(platform=AMD64, network=network, allow=allow)
    return convert(parse(text), inputs, _image)


def _runs(conv: Conversion) -> list[ExecOp]:
    ops: list[Op] = walk(conv.target.op)
    return [op for op in ops if isinstance(op, ExecOp)]


def test_security_and_network_reach_the_exec_op() -> None:
    conv = _convert("FROM base\nRUN --security=insecure --network=host true\n"
                    "RUN --network=none true\nRUN true\n", allow=ALL)
    assert [(r.network, r.security) for r in _runs(conv)] == [
        ("host", "insecure"), ("none", "sandbox"), ("default", "sandbox")]


def test_the_build_network_mode_is_that_of_every_run_that_does_not_choose() -> None:
    """As BuildKit's forced network mode: RUN --network=default takes it too."""
    conv = _convert("FROM base\nRUN true\nRUN --network=default true\n"
                    "RUN --network=host true\n", network="none", allow=ALL)
    assert [r.network for r in _runs(conv)] == ["none", "none", "host"]
    plain = _runs(_convert("FROM base\nRUN true\n"))[0]
    forced = _runs(_convert("FROM base\nRUN true\n", network="none"))[0]
    written = _runs(_convert("FROM base\nRUN --network=none true\n"))[0]
    assert forced.digest == written.digest != plain.digest  # a cache key of its own


@pytest.mark.parametrize(("line", "column", "reason"), [
    ("RUN --network=host true", 5,
     "RUN --network=host: network.host is not allowed; pass --allow network.host to "
     "grant the entitlement"),
    ("RUN  --mount=type=tmpfs,target=/t --security=insecure true", 35,
     "RUN --security=insecure: security.insecure is not allowed; pass --allow "
     "security.insecure to grant the entitlement"),
])
def test_a_run_needing_an_entitlement_not_granted_fails_at_its_flag(
        line: str, column: int, reason: str) -> None:
    with pytest.raises(DockerfileError) as info:
        _convert(f"FROM base\nRUN true\n{line}\n")
    assert (info.value.line, info.value.column, info.value.reason) == (3, column, reason)


def test_each_entitlement_grants_only_its_own() -> None:
    with pytest.raises(DockerfileError, match="security.insecure is not allowed"):
        _convert("FROM base\nRUN --security=insecure true\n",
                 allow=frozenset({entitlements.NETWORK_HOST}))
    with pytest.raises(DockerfileError, match="network.host is not allowed"):
        _convert("FROM base\nRUN --network=host true\n",
                 allow=frozenset({entitlements.SECURITY_INSECURE}))


def test_a_stage_the_target_does_not_need_asks_for_nothing() -> None:
    conv = _convert("FROM base AS unused\nRUN --network=host --security=insecure true\n"
                    "FROM base\nRUN true\n")
    assert [r.network for r in _runs(conv)] == ["default"]


def test_allow_values_are_repeatable_and_comma_separated() -> None:
    assert entitlements.parse_allow(["network.host"]) == {"network.host"}
    assert entitlements.parse_allow(["network.host, security.insecure", "network.host"]) \
        == ALL
    assert entitlements.parse_allow([]) == frozenset()


def test_an_unknown_entitlement_is_a_usage_error_listing_the_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        entitlements.parse_allow(["network.host,device"])
    assert info.value.exit_code == 2
    assert info.value.message == (
        "--allow device: unknown entitlement (known: network.host, security.insecure)")


def test_the_build_network_mode_host_needs_network_host() -> None:
    entitlements.check_build_network("none", frozenset())
    entitlements.check_build_network("host", frozenset({entitlements.NETWORK_HOST}))
    with pytest.raises(UsageError, match=r"^--network=host: network.host is not allowed"):
        entitlements.check_build_network("host", frozenset())
    with pytest.raises(UsageError, match="unknown network mode"):
        entitlements.check_build_network("bridge", ALL)
