"""Compression is found from the bytes; gzip and zstd layers are standard streams."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import subprocess
from pathlib import Path

import pytest
import zstandard

from ocibuild.errors import OcibuildError
from ocibuild.oci import layerstream
from ocibuild.oci.compression import detect, open_uncompressed
from ocibuild.oci.layer import apply_layer, write_layer_from_dir
from tests.support.layer_trees import describe, write_files


@pytest.mark.parametrize(("blob", "kind"), [
    (gzip.compress(b"x"), "gzip"),
    (zstandard.ZstdCompressor().compress(b"x"), "zstd"),
    (b"plain tar bytes", "none"),
    (b"", "none"),
])
def test_detect_from_magic_bytes(blob: bytes, kind: str) -> None:
    assert detect(blob[:4]) == kind


def test_open_uncompressed_reads_multi_member_gzip_and_multi_frame_zstd() -> None:
    gz = gzip.compress(b"one ", mtime=0) + gzip.compress(b"two", mtime=0)
    assert open_uncompressed(io.BytesIO(gz)).read() == b"one two"
    zc = zstandard.ZstdCompressor()
    zs = zc.compress(b"one ") + zc.compress(b"two")
    assert open_uncompressed(io.BytesIO(zs)).read() == b"one two"
    assert open_uncompressed(io.BytesIO(b"ab")).read() == b"ab"


def test_corrupt_streams_are_errors_for_people() -> None:
    bad_zstd = zstandard.ZstdCompressor().compress(b"x" * 1000)[:-6] + b"\0" * 6
    with pytest.raises(OcibuildError, match="not a valid zstd stream"):
        open_uncompressed(io.BytesIO(bad_zstd)).read()
    truncated_gzip = gzip.compress(bytes(range(256)) * 400 + b"z" * 7)[:-20]
    with pytest.raises(OcibuildError, match="not a valid gzip stream"):
        open_uncompressed(io.BytesIO(truncated_gzip)).read()


@pytest.mark.parametrize(("compression", "tool"), [("gzip", "gzip"), ("zstd", "zstd")])
def test_layers_decompress_with_the_standard_tools(tmp_path: Path, compression: str,
                                                   tool: str) -> None:
    src = tmp_path / "src"
    # More than a few compression blocks, so the block joins are exercised.
    write_files(src, {"big": bytes(range(256)) * 20000, "text": b"hello\n" * 500000})
    layer = tmp_path / "layer"
    with layer.open("wb") as f:
        info = write_layer_from_dir(src, f, compression=compression)
    plain = subprocess.run([tool, "-dc", str(layer)], check=True, capture_output=True).stdout
    assert "sha256:" + hashlib.sha256(plain).hexdigest() == info.diff_id
    dst = tmp_path / "dst"
    with layer.open("rb") as f:
        assert apply_layer(f, dst) == info.diff_id
    assert describe(dst) == describe(src)


def test_incompressible_data_is_stored_and_still_a_standard_gzip(tmp_path: Path) -> None:
    # Random bytes (as in a tarball or a jar) are stored, not deflated for nothing; text
    # beside them is still compressed; gzip itself reads the whole layer back.
    src = tmp_path / "src"
    noise = random.Random(4).randbytes(3 << 20)
    write_files(src, {"a.txt": b"hello layer\n" * 200000, "b.bin": noise,
                      "c.txt": b"more text\n" * 200000})
    layer = tmp_path / "layer"
    with layer.open("wb") as f:
        info = write_layer_from_dir(src, f, compression="gzip")
    plain = subprocess.run(["gzip", "-dc", str(layer)], check=True,
                           capture_output=True).stdout
    assert "sha256:" + hashlib.sha256(plain).hexdigest() == info.diff_id
    assert len(noise) < info.size < len(noise) + (1 << 20) // 10  # the text shrank
    # the rule that chose: noise is left as it is, text and a binary-like block are not
    block = layerstream.BLOCK
    assert layerstream._incompressible(bytearray(noise[:block]))
    assert not layerstream._incompressible(bytearray(plain[:block]))
    assert not layerstream._incompressible(bytearray(bytes(range(256)) * (block // 256)))


def test_media_type_does_not_decide_compression(tmp_path: Path) -> None:
    # A zstd blob handed over as if it were gzip (or anything else) still applies.
    src = tmp_path / "src"
    write_files(src, {"f": b"content"})
    out = io.BytesIO()
    info = write_layer_from_dir(src, out, compression="zstd")
    assert info.media_type.endswith("+zstd")
    out.seek(0)
    apply_layer(out, tmp_path / "dst")
    assert (tmp_path / "dst/f").read_bytes() == b"content"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_layers_bytes_do_not_depend_on_how_its_tar_was_written(tmp_path: Path,
                                                                 compression: str) -> None:
    # the sink cuts the stream into blocks of exactly BLOCK bytes, whatever the sizes of
    # the writes that fill them (and its first buffer grows to a block as it fills)
    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(4096)) * 700  # 2.7 blocks
    source = tmp_path / "data"
    source.write_bytes(data)

    def written(pieces: list[int], from_fd: bool) -> tuple[layerstream.StreamResult, bytes]:
        out = io.BytesIO()
        sink = layerstream.LayerSink(out, compression)
        offset = 0
        with open(source, "rb") as f:
            for size in pieces:
                if from_fd:
                    f.seek(offset)
                    assert sink.write_from_fd(f.fileno(), size) == size
                else:
                    sink.write(data[offset:offset + size])
                offset += size
        return sink.close(), out.getvalue()

    whole = written([len(data)], from_fd=False)
    sizes: list[int] = []
    while sum(sizes) < len(data):
        sizes.append(min(rng.choice([1, 511, 4096, 70_000, 300_000]), len(data) - sum(sizes)))
    assert written(sizes, from_fd=False) == whole
    assert written(sizes, from_fd=True) == whole
    result, blob = whole
    assert result.diff_id == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert result.digest == f"sha256:{hashlib.sha256(blob).hexdigest()}"
    plain = gzip.decompress(blob) if compression == "gzip" \
        else zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    assert plain == data
