"""Uploaded logos: what an image is, read from its bytes, never from its name.

Only PNG, JPEG and GIF are accepted, recognised by their magic bytes, with their size read
from the header (PNG's IHDR, GIF's logical screen, JPEG's start-of-frame) and their end
marker present, so a truncated file or a text file named ``logo.png`` is refused. SVG is
refused by name: it can carry scripts, and Gmail does not show it. A logo is stored and
served under the SHA-256 of its bytes (``/brand/logo/{sha256}.{ext}``): a new upload never
replaces the image an email already in an inbox points to.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass

from herald.core.errors import ValidationError

MAX_LOGO_BYTES = 512 * 1024
MIN_SIDE = 16
MAX_SIDE = 4000
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}
CONTENT_TYPES = {ext: content_type for content_type, ext in EXTENSIONS.items()}
PATH_PREFIX = "/brand/logo/"
_PATH_NAME = re.compile(r"([0-9a-f]{64})\.(png|jpg|gif)")

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_GIFS = (b"GIF87a", b"GIF89a")
# JPEG start-of-frame markers (not DHT C4, JPG C8, DAC CC): they carry the image's size.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_UNSUPPORTED = "upload a PNG, JPEG or GIF image"


@dataclass(frozen=True, slots=True)
class Image:
    content_type: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.content_type]


@dataclass(frozen=True, slots=True)
class LogoRef:
    """A stored logo: the hash of its bytes and its type name its public path."""

    sha256: str
    content_type: str

    @property
    def path(self) -> str:
        return f"{PATH_PREFIX}{self.sha256}.{EXTENSIONS[self.content_type]}"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_path_name(name: str) -> tuple[str, str] | None:
    """``{sha256}.{ext}`` → (sha256, content type), or None for anything else."""
    match = _PATH_NAME.fullmatch(name)
    if match is None:
        return None
    return match.group(1), CONTENT_TYPES[match.group(2)]


def sniff(data: bytes) -> Image:
    """What ``data`` is, or a ValidationError saying why it is no logo Herald accepts."""
    if not data:
        raise ValidationError("the file is empty: " + _UNSUPPORTED, field="logo")
    if len(data) > MAX_LOGO_BYTES:
        raise ValidationError(f"the logo is larger than {MAX_LOGO_BYTES // 1024} KB", field="logo")
    if data.startswith(_PNG):
        image = _png(data)
    elif data.startswith(_JPEG):
        image = _jpeg(data)
    elif data.startswith(_GIFS):
        image = _gif(data)
    elif _looks_like_svg(data):
        raise ValidationError(
            "SVG logos are not accepted (mail clients such as Gmail do not show them, and "
            "they can carry scripts): " + _UNSUPPORTED,
            field="logo",
        )
    else:
        raise ValidationError(
            "the file is not an image Herald accepts: " + _UNSUPPORTED, field="logo"
        )
    if not (MIN_SIDE <= image.width <= MAX_SIDE and MIN_SIDE <= image.height <= MAX_SIDE):
        raise ValidationError(
            f"the logo is {image.width} by {image.height} pixels: each side must be "
            f"{MIN_SIDE} to {MAX_SIDE} pixels",
            field="logo",
        )
    return image


def _broken(kind: str) -> ValidationError:
    return ValidationError(f"the file is not a complete {kind} image", field="logo")


def _png(data: bytes) -> Image:
    # Signature, then the IHDR chunk: length 13, type, width, height (big-endian).
    if len(data) < 33 or data[12:16] != b"IHDR" or b"IEND" not in data[-32:]:
        raise _broken("PNG")
    width, height = struct.unpack(">II", data[16:24])
    return Image("image/png", width, height)


def _gif(data: bytes) -> Image:
    if len(data) < 14 or not data.rstrip(b"\x00").endswith(b";"):
        raise _broken("GIF")
    width, height = struct.unpack("<HH", data[6:10])
    return Image("image/gif", width, height)


def _jpeg(data: bytes) -> Image:
    """Walk the JPEG's marker segments up to its start of frame."""
    if b"\xff\xd9" not in data[-1024:]:
        raise _broken("JPEG")
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise _broken("JPEG")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame
            break
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if length < 2:
            break
        if marker in _SOF:
            if position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return Image("image/jpeg", width, height)
        position += 2 + length
    raise _broken("JPEG")


def _looks_like_svg(data: bytes) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in head
