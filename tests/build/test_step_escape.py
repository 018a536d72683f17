"""A RUN step cannot reach the builder through its sandbox's control socket: the static
`steal` helper (tests/sandbox/attack) takes every descriptor it can and writes forged
control messages into them; files of the builder's user and its other processes are
untouched, and the build ends without a traceback."""

from __future__ import annotations

from tests.build.conftest import Builder, write_context
from tests.sandbox import attack

FORGED_ERROR = "FORGED-BY-THE-STEP"


def test_run_step_cannot_forge_the_builders_clean_up(builder: Builder) -> None:
    steal = attack.helpers()["steal"]
    markers = attack.Markers.create(builder.user)
    try:
        with attack.decoy(builder.user) as victim:
            payload = attack.forged_payload(markers.forged_paths(), victim.pid, FORGED_ERROR)
            ctx = write_context(builder.tmp / "ctx", {
                "Dockerfile": (
                    "FROM busybox:latest\n"
                    "COPY steal payload /\n"
                    f'RUN ["/steal", "/payload", "{attack.host_pidns_inode()}"]\n'),
                "steal": steal.read_bytes(),
                "payload": payload}, builder.user)
            (ctx / "steal").chmod(0o755)
            proc, _ = builder.build(ctx, check=False)
            victim_alive = victim.poll() is None
        missing = markers.missing()
    finally:
        markers.remove()
    problems = attack.damage_outside(missing, victim_alive)
    if "Traceback" in proc.stderr:
        problems.append("the build ended with a traceback")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ocibuild: error:")]
    if proc.returncode == 1:
        if len(errors) != 1:
            problems.append(f"a failed build prints one error line, not {errors}")
        elif FORGED_ERROR in errors[0]:
            problems.append(f"the builder reported a forged ERROR: {errors[0]}")
    elif proc.returncode != 0:
        problems.append(f"the build exited with {proc.returncode}")
    assert problems == [], "\n".join(problems) + f"\n--- stderr:\n{proc.stderr[-4000:]}"
    if proc.returncode == 0:
        assert "stolen=" in proc.stderr  # the helper ran (its output is in the log)
    assert "refused: this is the host's PID namespace" not in proc.stderr
