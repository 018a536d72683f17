"""Images built end to end (as `ocib-sub`) where the frontend once differed from
BuildKit's dockerfile2llb: what a user finds in the image."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder, write_context
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


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _copy_heredoc_and_file(img: imagefs.Image) -> None:
    assert text(img, "dest/file.txt") == "from the context\n"
    assert text(img, "dest/EOF") == "hello world\n"
    assert img.files["dest/EOF"].info.mode & 0o7777 == 0o644
    # one step, one layer: both files are in the last one
    assert {"dest/file.txt", "dest/EOF"} <= set(img.top)
    assert img.config["history"][-1]["created_by"] == "COPY ./file.txt <<EOF /dest/ # buildkit"


def _add_archive_and_heredoc(img: imagefs.Image) -> None:
    assert text(img, "x/inner/one.txt") == "one\n"  # the archive is extracted
    assert text(img, "x/NOTES") == "not an archive\n"
    assert text(img, "x/f.txt") == "plain\n"


def _onbuild_of_a_stage(img: imagefs.Image) -> None:
    assert text(img, "t") == "triggered\n"
    assert not config(img).get("OnBuild")


ROWS = [
    Row("onbuild-of-a-stage", "FROM busybox:latest AS parent\n"
        "ONBUILD RUN echo triggered > /t\nFROM parent\n", _onbuild_of_a_stage),
    Row("copy-heredoc-and-file", FROM + "ARG WHO=world\n"
        "COPY <<EOF ./file.txt /dest/\nhello ${WHO}\nEOF\n", _copy_heredoc_and_file,
        files={"file.txt": "from the context\n"}),
    Row("add-archive-and-heredoc", FROM + "ADD arch.tar <<NOTES f.txt /x/\n"
        "not an archive\nNOTES\n", _add_archive_and_heredoc,
        files={"arch.tar": _tar({"inner/one.txt": "one\n"}), "f.txt": "plain\n"}),
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


def test_expose_with_an_ipv6_zone_fails_the_build_at_its_word(module_builder: Builder) -> None:
    ctx = write_context(module_builder.tmp / "parity" / "expose-zone", {
        "Dockerfile": FROM + "ARG IP=[fe80::1%eth0]\nEXPOSE 80 ${IP}:8080:80\n"},
        module_builder.user)
    proc, _ = module_builder.build(ctx, check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-3:] == [
        "ocibuild: error: Dockerfile:3:11: invalid IP address '[fe80::1%eth0]' in port "
        "'[fe80::1%eth0]:8080:80': an IPv6 zone (%eth0) is not accepted",
        "EXPOSE 80 ${IP}:8080:80",
        "          ^",
    ]
