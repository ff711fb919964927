"""The hand-made HMAC of the send path is the standard one, for any key and message."""

from __future__ import annotations

import hmac

from hypothesis import given
from hypothesis import strategies as st

from herald.core.signing import Mac


@given(st.binary(max_size=200), st.binary(max_size=500))
def test_mac_is_hmac_sha256(key: bytes, message: bytes) -> None:
    assert Mac(key).digest(message) == hmac.digest(key, message, "sha256")


def test_one_mac_signs_many_messages_independently() -> None:
    signer = Mac(b"k" * 80)  # longer than a block: hashed first, as RFC 2104 says
    for message in (b"", b"a", b"a" * 1000, b"b"):
        assert signer.digest(message) == hmac.digest(b"k" * 80, message, "sha256")
