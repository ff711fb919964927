"""VERP return paths: each message's envelope sender names its delivery, signed.

With ``HERALD_EMAIL__SMTP__BOUNCE_ADDRESS=bounces@example.org`` the SMTP provider sends
the message of delivery 123 with ``MAIL FROM:<bounces+123.<mac>@example.org>``, where
``<mac>`` is 16 hex digits (64 bits) of an HMAC of the delivery id under a key derived
from ``HERALD_SECRET_KEY`` for this purpose alone. A bounce (a DSN, or any message a
remote server sends back) goes to that address, so whatever the bounce says, Herald
knows which delivery it is about; and since only Herald can make the MAC, a bounce
addressed to a made-up or altered return path — someone trying to get another reader
suppressed — is recognised as forged and ignored.

Hex, lower case: mail systems may fold the case of a local part on the way back, and
the check is case-insensitive. The MTA delivers ``bounces+…@`` to the bounce mailbox
or pipe with its recipient delimiter (Postfix's ``recipient_delimiter = +``, Exim's
``local_part_suffix = +*``).
"""

from __future__ import annotations

import hmac
import re
from email.utils import parseaddr

from herald.core.config import Settings
from herald.core.email_config import check_bounce_address
from herald.core.signing import Mac, purpose_key

PURPOSE = "verp"
MAC_HEX_DIGITS = 16
_ID_DIGITS = 19  # a bigint
_TOKEN = re.compile(rf"([1-9][0-9]{{0,{_ID_DIGITS - 1}}})\.([0-9a-f]{{{MAC_HEX_DIGITS}}})")


class Verp:
    """Makes and reads the signed return paths of one bounce address."""

    __slots__ = ("_domain", "_local", "_mac")

    def __init__(self, settings: Settings, bounce_address: str) -> None:
        base = check_bounce_address(bounce_address)
        self._local, _, self._domain = base.rpartition("@")
        self._mac = Mac(purpose_key(settings, PURPOSE))

    @classmethod
    def configured(cls, settings: Settings) -> Verp | None:
        """The configured bounce address's VERP, or None when none is set."""
        address = settings.email.smtp.bounce_address
        return cls(settings, address) if address else None

    def address(self, delivery_id: int) -> str:
        """The envelope sender of delivery ``delivery_id``'s message."""
        return f"{self._local}+{delivery_id}.{self._signature(str(delivery_id))}@{self._domain}"

    def delivery_of(self, address: str) -> int | None:
        """The delivery id an address made by :meth:`address` names; None for any other
        address, and for one whose signature does not match (forged or altered)."""
        token = self._token(address)
        match = _TOKEN.fullmatch(token) if token is not None else None
        if match is None:
            return None
        digits, signature = match.groups()
        if not hmac.compare_digest(signature.encode(), self._signature(digits).encode()):
            return None
        return int(digits)

    def looks_like(self, address: str) -> bool:
        """Whether ``address`` is shaped like one of these return paths (the bounce
        address with a ``+`` extension), signed correctly or not."""
        return self._token(address) is not None

    def _token(self, address: str) -> str | None:
        """What follows the ``+`` of this bounce address, or None for another address."""
        if len(address) > 998:
            return None
        _, addr = parseaddr(address)
        local, at, domain = (addr or address).strip().strip("<>").lower().rpartition("@")
        base, plus, token = local.partition("+")
        if not (at and plus and base == self._local and domain == self._domain):
            return None
        return token

    def _signature(self, digits: str) -> str:
        return self._mac.digest(digits.encode()).hex()[:MAC_HEX_DIGITS]
