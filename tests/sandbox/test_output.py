from __future__ import annotations

from tests.sandbox.conftest import Sandboxer


def test_output_reaches_the_caller_a_line_at_a_time(sbx: Sandboxer) -> None:
    (record,) = sbx.run({"rootfs": str(sbx.busybox),
                         "argv": ["sh", "-c", "for i in 1 2 3; do echo $i; echo e$i >&2; "
                                              "sleep 1; done"]})
    assert [text for _, text in record["stdout"]] == ["1\n", "2\n", "3\n"]
    assert [text for _, text in record["stderr"]] == ["e1\n", "e2\n", "e3\n"]
    times = [t for t, _ in record["stdout"]]
    assert times[0] - record["start"] < 0.9  # the first line came before the step ended
    assert 0.8 < times[1] - times[0] < 1.6 and 0.8 < times[2] - times[1] < 1.6
    assert record["end"] - times[2] > 0.8
