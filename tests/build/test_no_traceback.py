"""Unwritable outputs and bad values are one line naming the path and the reason (exit
1, or 2 for a bad command-line value), never a traceback; only --debug shows one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.build.conftest import Builder, write_context
from tests.support.paths import OCIBUILD

DOCKERFILE = "FROM busybox:latest\nRUN --mount=type=secret,id=x cat /run/secrets/x || true\n"


@pytest.fixture(scope="module")
def places(module_builder: Builder) -> dict[str, Path]:
    """A context, a root-owned 0755 directory the user cannot write in, and a root-only
    file it cannot read."""
    ctx = write_context(module_builder.tmp / "ctx", {"Dockerfile": DOCKERFILE},
                        module_builder.user)
    locked = module_builder.tmp / "locked"
    locked.mkdir(mode=0o755)
    (locked / "existing").mkdir(mode=0o755)
    unreadable = module_builder.tmp / "root-only"
    unreadable.write_text("secret")
    os.chmod(unreadable, 0o600)
    return {"ctx": ctx, "locked": locked, "unreadable": unreadable}


CASES = [  # (argument template, exit status, the path the message names)
    ("-o type=local,dest={locked}/out", 1, "{locked}"),
    ("-o type=local,dest={locked}/existing", 1, "{locked}/existing"),
    ("-o {locked}/out", 1, "{locked}"),
    ("-o type=oci,dest={locked}/image.tar", 1, "{locked}"),
    ("-o type=oci,dest={locked}/layout,tar=false", 1, "{locked}"),
    ("-o type=docker,dest={locked}/image.tar", 1, "{locked}"),
    ("--iidfile {locked}/iid", 1, "{locked}"),
    ("--metadata-file {locked}/metadata.json", 1, "{locked}"),
    ("--cache-to type=local,dest={locked}/cache", 1, "{locked}/cache"),
    ("--platform bogus", 2, "bogus"),
    ("--secret id=x,src={unreadable}", 2, "{unreadable}"),
]


@pytest.mark.parametrize(("args", "status", "named"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_destination_or_value_is_one_line(module_builder: Builder,
                                                places: dict[str, Path], args: str,
                                                status: int, named: str) -> None:
    argv = [a.format(**places) for a in args.split()]
    proc, _ = module_builder.build(*argv, places["ctx"], check=False)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == status, proc.stderr
    last = proc.stderr.rstrip().splitlines()[-1]
    assert last.startswith("ocibuild: error: "), proc.stderr
    assert named.format(**places) in last, proc.stderr
    assert "Errno" not in last, last


def test_debug_shows_the_traceback(module_builder: Builder, places: dict[str, Path]) -> None:
    proc = module_builder.user.run([OCIBUILD, "--debug", "--root", module_builder.root, "build",
                                    "--progress", "plain", "--iidfile",
                                    places["locked"] / "iid", places["ctx"]],
                                   cwd=module_builder.tmp)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr


def test_the_api_refuses_a_bogus_platform_as_a_usage_error(module_builder: Builder,
                                                          places: dict[str, Path]) -> None:
    code = ("import ocibuild, sys\n"
            "from ocibuild.errors import UsageError\n"
            "try:\n"
            "    ocibuild.build(sys.argv[1], root=sys.argv[2], platform='bogus')\n"
            "except UsageError as exc:\n"
            "    print(exc.message)\n")
    proc = module_builder.user.run([Path(OCIBUILD).parent / "python", "-c", code,
                                    places["ctx"], module_builder.root])
    assert proc.returncode == 0, proc.stderr
    assert "bogus" in proc.stdout


def test_an_unreadable_secret_is_refused_before_the_build(module_builder: Builder,
                                                         places: dict[str, Path]) -> None:
    """Even when no step uses it: the option is checked as it is parsed."""
    ctx = write_context(module_builder.tmp / "ctx-nosecret",
                        {"Dockerfile": "FROM busybox:latest\n"}, module_builder.user)
    proc, _ = module_builder.build("--secret", f"id=x,src={places['unreadable']}",
                                   ctx, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{places['unreadable']}: permission denied" in proc.stderr.lower()


def test_import_to_an_unwritable_layout_is_one_line(module_builder: Builder,
                                                   places: dict[str, Path],
                                                   busybox_rootfs: Path) -> None:
    layout = places["locked"] / "layout"
    proc = module_builder.user.run([OCIBUILD, "--root", module_builder.root, "import",
                                    "--output", f"oci:{layout}", busybox_rootfs, "-t", "a:1"])
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"ocibuild: error: cannot use {layout}: permission denied"
