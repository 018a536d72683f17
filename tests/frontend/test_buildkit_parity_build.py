"""Images built end to end (as `ocib-sub`) where the frontend once differed from
BuildKit's dockerfile2llb: what a user finds in the image."""

from __future__ import annotations

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder
from tests.build.table import Row, build_rows, config, env, text

FROM = "FROM busybox:latest\n"


def _onbuild_as_written(img: imagefs.Image) -> None:
    assert config(img)["OnBuild"] == ["RUN echo triggered > /t   "]
    assert not any("ONBUILD" in h.get("created_by", "") for h in img.config["history"])


def _env_names_expanded(img: imagefs.Image) -> None:
    e = env(img)
    assert e["FOO"] == "bar" and e["old"] == "before"
    assert "${name}" not in e
    assert text(img, "seen") == "bar before\n"


ROWS = [
    Row("env-names-expanded", FROM + "ARG name=FOO\nENV old=before\n"
        "ENV ${name}=bar old=after copy=$old\nENV old=$copy\n"
        'RUN echo "$FOO $old" > /seen\n', _env_names_expanded),
    Row("onbuild-as-written", FROM + "ONBUILD RUN echo triggered > /t   \n",
        _onbuild_as_written),
]


@pytest.fixture(scope="module")
def built(module_builder: Builder) -> dict[str, imagefs.Image | str]:
    return {row.id: image for row, image in build_rows(module_builder, ROWS, "parity")}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_built_image(row: Row, built: dict[str, imagefs.Image | str]) -> None:
    image = built[row.id]
    assert not isinstance(image, str), f"the build failed: {image}"
    row.check(image)
