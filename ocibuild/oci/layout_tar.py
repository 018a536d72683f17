"""An OCI image layout packed as one tar file (what `-o type=oci,dest=FILE.tar` writes)."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.atomic import atomic_file, atomic_write_bytes
from ocibuild.errors import OcibuildError
from ocibuild.oci import digest as _digest
from ocibuild.oci.layout import INDEX_FILE, OCI_LAYOUT_FILE, ImageLayout

if TYPE_CHECKING:
    from ocibuild.progress.transfer import Transfer


def _add(tar: tarfile.TarFile, src: Path, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size = src.stat().st_size
    info.mode = 0o644
    info.mtime = 0
    with open(src, "rb") as f:
        tar.addfile(info, f)


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 0
    tar.addfile(info)


def pack(layout: ImageLayout, dest: Path, shown: Transfer | None = None) -> None:
    """Write `layout` as a deterministic tar at `dest` (atomically); its bytes go to
    `shown` as they are written."""
    with atomic_file(dest) as out:
        if shown is not None:
            from ocibuild.progress.transfer import counting

            out = counting(out, shown)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, layout.path / OCI_LAYOUT_FILE, OCI_LAYOUT_FILE)
            _add(tar, layout.path / INDEX_FILE, INDEX_FILE)
            _add_dir(tar, "blobs")
            _add_dir(tar, f"blobs/{_digest.ALGORITHM}")
            for digest in layout.blobs():
                _add(tar, layout.blob_path(digest),
                     f"blobs/{_digest.ALGORITHM}/{_digest.hex_of(digest)}")
        if shown is not None:
            shown.finish()


def unpack(src: Path, dest: Path) -> ImageLayout:
    """Unpack a layout tar into directory `dest`, verifying every blob's digest.

    Only the layout's own names are accepted (oci-layout, index.json,
    blobs/sha256/HEX); anything else in the archive is an error.
    """
    layout = ImageLayout.init(dest)
    try:
        tar = tarfile.open(src, mode="r|*")
    except (OSError, tarfile.TarError) as exc:
        raise OcibuildError(f"{src}: not a readable tar archive: {exc}") from None
    with tar:
        for member in tar:
            name = member.name.lstrip("./") if member.name not in (".", "./") else ""
            if member.isdir() or not name:
                continue
            if not member.isfile():
                raise OcibuildError(f"{src}: unexpected entry {member.name!r} in an OCI layout")
            f = tar.extractfile(member)
            assert f is not None
            if name in (OCI_LAYOUT_FILE, INDEX_FILE):
                data = f.read(1 << 24)
                atomic_write_bytes(layout.path / name, data)
                continue
            parts = name.split("/")
            if len(parts) != 3 or parts[0] != "blobs" or parts[1] != _digest.ALGORITHM:
                raise OcibuildError(f"{src}: unexpected entry {member.name!r} in an OCI layout")
            expected = f"{_digest.ALGORITHM}:{parts[2]}"
            if not _digest.is_digest(expected):
                raise OcibuildError(f"{src}: bad blob name {member.name!r}")
            layout.put_stream(f, expected_digest=expected, expected_size=member.size)
    return ImageLayout.open(dest)
