"""Which platforms binfmt_misc handlers run: matched by ELF header, as the kernel does,
from entries written the way /proc/sys/fs/binfmt_misc shows them."""

from __future__ import annotations

from pathlib import Path

from ocibuild.oci.platform import Platform
from ocibuild.sandbox import binfmt

# as the kernel shows qemu-user-static's aarch64 entry
AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


def _dir(tmp_path: Path, **entries: str) -> Path:
    for name, text in entries.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "register").write_text("")
    (tmp_path / "status").write_text("enabled\n")
    return tmp_path


def test_a_handler_is_found_by_the_elf_header(tmp_path: Path) -> None:
    found = binfmt.handlers(_dir(tmp_path, **{"qemu-aarch64": AARCH64}))
    assert [h.name for h in found] == ["qemu-aarch64"]
    handler = binfmt.handler_for(Platform.parse("linux/arm64"), found)
    assert handler is not None and "F" in handler.flags
    assert binfmt.handler_for(Platform.parse("linux/arm64/v8"), found) is handler
    for other in ("linux/s390x", "linux/arm/v7", "linux/riscv64", "linux/amd64"):
        assert binfmt.handler_for(Platform.parse(other), found) is None


def test_disabled_and_extension_entries_do_not_count(tmp_path: Path) -> None:
    directory = _dir(tmp_path, **{"qemu-aarch64": AARCH64.replace("enabled", "disabled"),
                                  "jar": "enabled\ninterpreter /usr/bin/jexec\nflags: \n"
                                         "extension .jar\n"})
    assert binfmt.handlers(directory) == []
    assert binfmt.handlers(tmp_path / "not-mounted") == []


def test_the_host_and_its_compatible_platforms_run_natively() -> None:
    amd64 = Platform.parse("linux/amd64")
    assert binfmt.runs_natively(Platform.parse("linux/386"), amd64)
    assert not binfmt.runs_natively(Platform.parse("linux/arm64"), amd64)
    assert binfmt.runs_natively(Platform.parse("linux/arm/v7"), Platform.parse("linux/arm64"))
