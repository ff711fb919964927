"""Issue 14 item 4: an uploaded logo is recognised by its bytes, never by its name."""

from __future__ import annotations

import struct
import zlib

import pytest

from herald.core.errors import ValidationError
from herald.design.logos import (
    MAX_LOGO_BYTES,
    LogoRef,
    parse_path_name,
    sha256_of,
    sniff,
)


def png(width: int = 320, height: int = 80, padding: int = 0) -> bytes:
    """A real PNG (one grey row repeated), ``padding`` bytes of an ancillary chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    extra = chunk(b"tEXt", b"c\x00" + b"x" * padding) if padding else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def gif(width: int = 200, height: int = 50) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b"\x00" * 8 + b";"


def jpeg(width: int = 640, height: int = 160) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return (
        b"\xff\xd8"
        + app0
        + sof
        + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
        + b"\x00" * 20
        + b"\xff\xd9"
    )


@pytest.mark.parametrize(
    ("data", "content_type", "size"),
    [
        (png(), "image/png", (320, 80)),
        (gif(), "image/gif", (200, 50)),
        (jpeg(), "image/jpeg", (640, 160)),
    ],
)
def test_png_jpeg_and_gif_are_recognised_with_their_size(
    data: bytes, content_type: str, size: tuple[int, int]
) -> None:
    image = sniff(data)
    assert (image.content_type, (image.width, image.height)) == (content_type, size)


def test_a_progressive_jpeg_after_other_segments_is_read_too() -> None:
    data = jpeg(1000, 250).replace(b"\xff\xc0", b"\xff\xc2")
    data = data[:2] + b"\xff\xe1" + struct.pack(">H", 10) + b"Exif\x00\x00\x00\x00" + data[2:]
    assert (sniff(data).width, sniff(data).height) == (1000, 250)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"just some text, named logo.png", "not an image Herald accepts"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"  <svg onload='alert(1)'></svg>", "SVG"),
        (png()[:40], "not a complete PNG"),
        (gif()[:-1] + b"x", "not a complete GIF"),
        (jpeg()[:-2], "not a complete JPEG"),
        (b"\xff\xd8\xff\xe0\x00\x01garbage\xff\xd9", "not a complete JPEG"),
        (png(1, 1), "1 by 1 pixels"),
        (png(5000, 16), "5000 by 16 pixels"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"IEND\xaeB`\x82", "not a complete PNG"),
    ],
)
def test_anything_else_is_refused_saying_why(data: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        sniff(data)
    assert refused.value.field == "logo"


def test_a_logo_over_the_limit_is_refused() -> None:
    big = png(padding=MAX_LOGO_BYTES)
    with pytest.raises(ValidationError, match="larger than 512 KB"):
        sniff(big)
    assert sniff(png(padding=MAX_LOGO_BYTES - 2000)).width == 320


def test_a_logo_is_named_by_its_hash_and_type() -> None:
    data = png()
    ref = LogoRef(sha256_of(data), "image/png")
    assert ref.path == f"/brand/logo/{sha256_of(data)}.png"
    assert parse_path_name(ref.path.rsplit("/", 1)[1]) == (ref.sha256, "image/png")
    assert parse_path_name(f"{ref.sha256}.jpg") == (ref.sha256, "image/jpeg")
    for bad in (f"{ref.sha256}.svg", f"{ref.sha256.upper()}.png", "x.png", f"{ref.sha256}.png/"):
        assert parse_path_name(bad) is None
