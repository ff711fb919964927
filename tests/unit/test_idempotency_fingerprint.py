"""The API's idempotency fingerprint of an upload (api/idempotency.py): the multipart
boundary, random per request, is masked wherever the stream's pieces cut it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from herald.api.idempotency import _BoundaryMask

BOUNDARY = b"--a1b2c3d4e5"


def masked(data: bytes, sizes: list[int]) -> bytes:
    mask = _BoundaryMask(BOUNDARY)
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = max(1, sizes[i % len(sizes)]) if sizes else len(data)
        out.append(mask.feed(data[pos : pos + size]))
        pos += size
        i += 1
    return b"".join(out) + mask.rest()


BODY = (
    BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"\r\n\r\nemail\r\n'
    b"--a1b2c3 not it\r\n" + BOUNDARY + b"--\r\n"
)


@given(st.lists(st.integers(min_value=1, max_value=len(BODY)), max_size=20))
def test_any_cut_masks_the_same(sizes: list[int]) -> None:
    assert masked(BODY, sizes) == masked(BODY, [])


def test_the_boundary_is_masked_and_the_rest_kept() -> None:
    whole = masked(BODY, [])
    assert BOUNDARY not in whole
    assert whole.count(b"\x00--boundary\x00") == 2
    assert b"--a1b2c3 not it" in whole
    other = BODY.replace(BOUNDARY, b"--zz9")
    mask = _BoundaryMask(b"--zz9")
    assert mask.feed(other) + mask.rest() == whole
