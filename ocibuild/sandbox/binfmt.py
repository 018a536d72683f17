"""Which platforms' programs this machine can run: natively, or through a binfmt_misc
handler (QEMU user emulation) that the kernel starts for a foreign ELF file.

A RUN step of another architecture is an ordinary exec in the sandbox: the kernel
finds the handler whose magic and mask match the ELF header and runs its interpreter
instead. Inside the builder's user and mount namespaces and its chroot, that works only
with a handler registered with the F flag: the kernel opened the interpreter when it
was registered, so it need not exist in the step's root filesystem. A handler without
it fails every step with "No such file or directory"; no handler at all with "Exec
format error". Both are found here before a build runs its first step.

A handler is matched by the ELF header a platform's programs start with, never by its
name: a handler from binfmt-support, systemd's binfmt.d or `docker run --privileged
tonistiigi/binfmt` counts the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ocibuild.oci.platform import Platform
from ocibuild.oci.platform import host as host_platform
from ocibuild.sandbox.errors import SandboxError

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

# architecture -> (ELF class: 1 = 32-bit, 2 = 64-bit; byte order: 1 = little, 2 = big;
# e_machine; QEMU's name for it, as qemu-user-static's handlers are called)
_ELF = {
    "amd64": (2, 1, 0x3E, "x86_64"),
    "386": (1, 1, 0x03, "i386"),
    "arm64": (2, 1, 0xB7, "aarch64"),
    "arm": (1, 1, 0x28, "arm"),
    "ppc64le": (2, 1, 0x15, "ppc64le"),
    "s390x": (2, 2, 0x16, "s390x"),
    "riscv64": (2, 1, 0xF3, "riscv64"),
    "mips64le": (2, 1, 0x08, "mips64el"),
    "loong64": (2, 1, 0x102, "loongarch64"),
}
# what a host runs without emulation besides its own architecture
_NATIVE_ALSO = {"amd64": ("386",), "arm64": ("arm",)}


@dataclass(frozen=True)
class Handler:
    """One enabled binfmt_misc entry of the magic kind."""

    name: str
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes

    def matches(self, header: bytes) -> bool:
        window = header[self.offset:self.offset + len(self.magic)]
        if len(window) < len(self.magic):
            return False
        mask = self.mask or b"\xff" * len(self.magic)
        return all(h & m == g & m for h, m, g in zip(window, mask, self.magic, strict=True))


def _read_handler(path: Path) -> Handler | None:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != "enabled":
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    if "magic" not in fields:  # an extension entry: never an ELF file's
        return None
    try:
        return Handler(path.name, fields.get("interpreter", ""), fields.get("flags:", ""),
                       int(fields.get("offset", "0")), bytes.fromhex(fields["magic"]),
                       bytes.fromhex(fields.get("mask", "")))
    except ValueError:
        return None


def handlers(directory: Path = BINFMT_DIR) -> list[Handler]:
    """The enabled magic handlers (none when binfmt_misc is not mounted)."""
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return []
    found = (_read_handler(directory / name) for name in entries
             if name not in ("register", "status"))
    return [h for h in found if h is not None]


def elf_header(platform: Platform) -> bytes | None:
    """The first bytes of an executable of `platform`, as a handler's magic sees them."""
    spec = _ELF.get(platform.normalized().architecture)
    if spec is None:
        return None
    elf_class, order, machine, _ = spec
    endian: Literal["little", "big"] = "little" if order == 1 else "big"
    return (b"\x7fELF" + bytes([elf_class, order, 1]) + bytes(9)
            + (2).to_bytes(2, endian) + machine.to_bytes(2, endian)
            + (1).to_bytes(4, endian) + bytes(40))


def runs_natively(platform: Platform, host: Platform | None = None) -> bool:
    here = (host or host_platform()).normalized()
    want = platform.normalized()
    return want.os == here.os and (
        want.architecture == here.architecture
        or want.architecture in _NATIVE_ALSO.get(here.architecture, ()))


def handler_for(platform: Platform, found: Iterable[Handler] | None = None) -> Handler | None:
    """The enabled handler the kernel would run `platform`'s programs with, if any."""
    header = elf_header(platform)
    if header is None:
        return None
    return next((h for h in (handlers() if found is None else found)
                 if h.matches(header)), None)


def check_runnable(platforms: Iterable[Platform]) -> None:
    """Raise a SandboxError naming the first platform whose RUN steps cannot run here:
    neither native nor with an F-flagged handler; say how to register one."""
    found: list[Handler] | None = None  # read only for a foreign platform
    for platform in platforms:
        if platform.os != "linux" or runs_natively(platform):
            continue
        found = handlers() if found is None else found
        handler = handler_for(platform, found)
        if handler is None:
            raise SandboxError(f"{platform}: no binfmt_misc handler here runs this "
                               f"platform's programs, so its RUN steps cannot run. "
                               + _how_to_register(platform))
        if "F" not in handler.flags:
            raise SandboxError(
                f"{platform}: the binfmt_misc handler {handler.name} was registered "
                f"without the F flag, so its interpreter ({handler.interpreter}) cannot "
                "be opened inside a step's root filesystem. Register it again with the "
                "F flag (Debian's qemu-user-static does: " + _how_to_register(platform)
                + ")")


def _how_to_register(platform: Platform) -> str:
    spec = _ELF.get(platform.normalized().architecture)
    if spec is None:
        return "ocibuild knows no QEMU emulator for this architecture."
    where = "" if (BINFMT_DIR / "register").exists() else (
        "mount binfmt_misc (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc), then ")
    return (f"To register QEMU's user emulation, as root: {where}apt-get install "
            f"qemu-user-static binfmt-support, or update-binfmts --enable qemu-{spec[3]}")


def runnable_platforms() -> list[tuple[Platform, str]]:
    """Every platform ocibuild knows that this machine runs, with how: "native" or the
    handler's name."""
    here = host_platform().normalized()
    found = handlers()
    out: list[tuple[Platform, str]] = []
    for arch in _ELF:
        platform = Platform("linux", arch)
        if runs_natively(platform, here):
            out.append((here if arch == here.architecture else platform, "native"))
        elif (handler := handler_for(platform, found)) is not None:
            how = handler.name if "F" in handler.flags else f"{handler.name} (no F flag)"
            out.append((platform, how))
    return out
