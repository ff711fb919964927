"""The email design: the branding an admin set over the configured defaults, the layouts,
and what every email uses (:class:`Design`).

Values set in the admin win over ``HERALD_NEWSLETTER__*``, which stay the defaults: a field
the admin never set (``None``) follows the configuration, and resetting a field makes it
follow the configuration again. The built-in layout lives in the package (read-only,
copyable); stored layouts are copies the editors changed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from herald.core.errors import ValidationError
from herald.design.logos import LogoRef
from herald.email.layout import MAX_LAYOUT_LENGTH, Branding

MAX_NAME = 100
MAX_FOOTER = 300
MAX_LAYOUT_NAME = 100
MAX_SOURCE_LENGTH = MAX_LAYOUT_LENGTH  # what compile_layout accepts
BUILTIN_ID = "default"
BUILTIN_NAME = "Herald default"
_ACCENT = re.compile(r"#[0-9a-fA-F]{6}")


class Field(StrEnum):
    """A branding value that can be reset to its configured default."""

    NAME = "name"
    ACCENT = "accent"
    FOOTER_ADDRESS = "footer_address"
    LOGO = "logo"

    @classmethod
    def parse(cls, raw: str) -> Field:
        try:
            return cls(raw)
        except ValueError:
            raise ValidationError(f"no such branding setting: {raw!r}", field="field") from None


def _one_line(raw: str) -> str:
    return " ".join(raw.split())


def parse_name(raw: str) -> str:
    name = _one_line(raw)
    if not name:
        raise ValidationError(
            "enter the newsletter's name (or reset it to the configured default)", field="name"
        )
    if len(name) > MAX_NAME:
        raise ValidationError(f"the name is longer than {MAX_NAME} characters", field="name")
    return name


def parse_accent(raw: str) -> str:
    accent = raw.strip().lower()
    if accent and not accent.startswith("#"):
        accent = "#" + accent
    if not _ACCENT.fullmatch(accent):
        raise ValidationError(
            f"the accent colour must be a hex colour like #3451c7, not {raw.strip()!r}",
            field="accent",
        )
    return accent


def parse_footer_address(raw: str) -> str:
    """The postal address on one line (the layout shows it as one); empty: none."""
    address = _one_line(raw)
    if len(address) > MAX_FOOTER:
        raise ValidationError(
            f"the footer address is longer than {MAX_FOOTER} characters", field="footer_address"
        )
    return address


def parse_layout_name(raw: str) -> str:
    name = _one_line(raw)
    if not name:
        raise ValidationError("give the layout a name", field="name")
    if len(name) > MAX_LAYOUT_NAME:
        raise ValidationError(
            f"the layout's name is longer than {MAX_LAYOUT_NAME} characters", field="name"
        )
    return name


@dataclass(frozen=True, slots=True)
class Overrides:
    """What the admin set; ``None`` follows the configured default. ``logo_set`` false
    follows ``HERALD_NEWSLETTER__LOGO_URL``; true means ``logo`` (None: no logo)."""

    name: str | None = None
    accent: str | None = None
    footer_address: str | None = None
    logo_set: bool = False
    logo: LogoRef | None = None
    logo_size: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class DesignRow:
    """The ``email_design`` row with its active layout."""

    overrides: Overrides
    version: int
    layout_id: uuid.UUID | None
    layout_name: str | None
    layout_source: str | None
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class Design:
    """What emails are made with: the branding in force, the active layout's MJML (None:
    the built-in one) and the version it was read at."""

    version: int
    branding: Branding
    layout_source: str | None = None


def effective_branding(overrides: Overrides, defaults: Branding, base_url: str) -> Branding:
    """The configured ``defaults`` with the admin's values over them; an uploaded logo's
    URL is absolute (``base_url`` + its content-addressed path), as emails need."""
    branding = defaults
    if overrides.name is not None:
        branding = replace(branding, name=overrides.name)
    if overrides.accent is not None:
        branding = replace(branding, accent=overrides.accent)
    if overrides.footer_address is not None:
        branding = replace(branding, footer_address=overrides.footer_address)
    if overrides.logo_set:
        logo_url = f"{base_url}{overrides.logo.path}" if overrides.logo else ""
        branding = replace(branding, logo_url=logo_url)
    return branding


def design_of(row: DesignRow, defaults: Branding, base_url: str) -> Design:
    return Design(
        version=row.version,
        branding=effective_branding(row.overrides, defaults, base_url),
        layout_source=row.layout_source,
    )


@dataclass(frozen=True, slots=True)
class LayoutSummary:
    """A layout in the templates list: stored ones have a uuid, the built-in one
    :data:`BUILTIN_ID`."""

    id: str
    name: str
    builtin: bool
    active: bool
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True, slots=True)
class LayoutRecord:
    id: str
    name: str
    source: str
    builtin: bool
    active: bool


def parse_layout_id(raw: str) -> str:
    """:data:`BUILTIN_ID` or a stored layout's uuid (normalised); anything else is no
    layout (a 404, as for a uuid nobody stored)."""
    if raw == BUILTIN_ID:
        return raw
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return ""
