"""DKIM signing (``HERALD_EMAIL__DKIM__…``) and the DNS resolver the sending-domain check
uses (``HERALD_DNS__…``). Kept apart from :mod:`herald.core.config` so each module stays
small; :mod:`herald.core.email_config` and :mod:`herald.core.config` hold the sections.

The private key is loaded here, while the settings are read, so a key that is missing,
unreadable, encrypted, not PEM, not RSA or shorter than 1024 bits stops every process at
start-up with a message naming the variable, not the first send hours later.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

# Receivers ignore shorter RSA keys (RFC 8301); 2048 bits is what to generate.
MIN_KEY_BITS = 1024
MAX_KEY_BYTES = 64 * 1024
# A selector is one or more DNS labels (RFC 6376 3.1); a domain is a host name.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DOMAIN = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+")

_KEY = "HERALD_EMAIL__DKIM__PRIVATE_KEY"
_KEY_FILE = "HERALD_EMAIL__DKIM__PRIVATE_KEY_FILE"


class _Section(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}


class DkimSettings(_Section):
    """Signing is on when ``selector`` is set; the key comes from exactly one of
    ``private_key`` (PEM text; ``\\n`` may stand for line breaks) or ``private_key_file``."""

    selector: str | None = None
    # None: the domain of HERALD_EMAIL__SENDER.
    domain: str | None = None
    private_key: SecretStr | None = None
    private_key_file: Path | None = None

    @field_validator("selector", "domain", "private_key", "private_key_file", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("selector")
    @classmethod
    def _valid_selector(cls, value: str | None) -> str | None:
        if value is not None and not _SELECTOR.fullmatch(value):
            raise ValueError(
                f"HERALD_EMAIL__DKIM__SELECTOR {value!r} is not a DKIM selector "
                f"(DNS labels of letters, digits, '-' and '_', e.g. 'herald2026')"
            )
        return value

    @field_validator("domain")
    @classmethod
    def _valid_domain(cls, value: str | None) -> str | None:
        if value is not None and not _DOMAIN.fullmatch(value.rstrip(".")):
            raise ValueError(f"HERALD_EMAIL__DKIM__DOMAIN {value!r} is not a domain name")
        return value.rstrip(".").lower() if value is not None else None

    @model_validator(mode="after")
    def _complete(self) -> DkimSettings:
        has_key = self.private_key is not None or self.private_key_file is not None
        if self.selector is None and (has_key or self.domain is not None):
            raise ValueError(
                "HERALD_EMAIL__DKIM__SELECTOR must be set to sign with DKIM "
                "(the key and domain are set without it)"
            )
        if self.selector is not None:
            if self.private_key is not None and self.private_key_file is not None:
                raise ValueError(f"set {_KEY} or {_KEY_FILE}, not both")
            if not has_key:
                raise ValueError(
                    f"DKIM signing (HERALD_EMAIL__DKIM__SELECTOR) needs {_KEY_FILE} "
                    f"(a PEM file) or {_KEY} (the PEM text); generate one with: "
                    f"openssl genrsa -out dkim.pem 2048"
                )
            self.load_private_key()
        return self

    @property
    def enabled(self) -> bool:
        return self.selector is not None

    def load_private_key(self) -> rsa.RSAPrivateKey:
        """The RSA key, read and checked; ``ValueError`` naming the variable otherwise."""
        if self.private_key_file is not None:
            name, pem = _KEY_FILE, _read_key_file(self.private_key_file)
        elif self.private_key is not None:
            text = self.private_key.get_secret_value().replace("\\n", "\n")
            name, pem = _KEY, text.encode("utf-8", "replace")
        else:
            raise ValueError(f"no DKIM key: set {_KEY_FILE} or {_KEY}")
        try:
            key = load_pem_private_key(pem, password=None)
        except TypeError:
            raise ValueError(f"{name}: the key is encrypted; give it unencrypted") from None
        except (ValueError, UnsupportedAlgorithm) as exc:  # never echo the key
            raise ValueError(
                f"{name}: not a PEM private key ({type(exc).__name__}); expected "
                f"'-----BEGIN PRIVATE KEY-----' or '-----BEGIN RSA PRIVATE KEY-----'"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(  # noqa: TRY004 - pydantic reports ValueError as the setting's
                f"{name}: a {type(key).__name__.removesuffix('PrivateKey')} key; "
                f"DKIM here signs with RSA (rsa-sha256), e.g. openssl genrsa -out dkim.pem 2048"
            )
        if key.key_size < MIN_KEY_BITS:
            raise ValueError(
                f"{name}: a {key.key_size}-bit RSA key; receivers ignore DKIM keys under "
                f"{MIN_KEY_BITS} bits (use 2048)"
            )
        return key


def _read_key_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{_KEY_FILE}: cannot read {str(path)!r}: {exc.strerror}") from None
    if len(data) > MAX_KEY_BYTES:
        raise ValueError(f"{_KEY_FILE}: {str(path)!r} is over {MAX_KEY_BYTES} bytes, not a key")
    return data


class DnsSettings(_Section):
    """The resolver of the sending-domain check (/admin/settings/deliverability)."""

    # Name servers to ask, ``IP`` or ``IP:PORT`` (``[IPv6]:PORT``), separated by commas;
    # empty: the system's (/etc/resolv.conf).
    nameservers: Annotated[tuple[str, ...], NoDecode] = ()
    # How long one check may wait for all its answers.
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)

    @field_validator("nameservers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("nameservers")
    @classmethod
    def _valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for server in value:
            parse_nameserver(server)
        return value

    def servers(self) -> list[tuple[str, int]]:
        return [parse_nameserver(server) for server in self.nameservers]


def parse_nameserver(server: str) -> tuple[str, int]:
    """``'1.2.3.4'``, ``'1.2.3.4:53'``, ``'::1'``, ``'[::1]:53'`` → ``(address, port)``."""
    host, port = server, 53
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        if rest:
            port = _port(server, rest.removeprefix(":"))
    elif server.count(":") == 1:
        host, _, text = server.partition(":")
        port = _port(server, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"HERALD_DNS__NAMESERVERS: {server!r} is not an IP address (or IP:PORT)"
        ) from None
    return host, port


def _port(server: str, text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535):
        raise ValueError(f"HERALD_DNS__NAMESERVERS: {server!r} has no valid port")
    return int(text)
