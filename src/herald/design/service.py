"""The admin's use cases on the email design: branding (over the configured defaults),
logos, and the layouts editors copy, edit, delete and activate.

Every change bumps the design's version in the transaction that makes it, so every
process's cached design (:mod:`herald.design.current`) follows within seconds. A layout is
saved only once it compiles and has its ``{{ content }}`` and ``{{ unsubscribe_url }}``
placeholders (:func:`herald.email.layout.compile_layout`, off the event loop).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.design import repository
from herald.design.current import design_cache
from herald.design.domain import (
    BUILTIN_ID,
    BUILTIN_NAME,
    MAX_LAYOUT_NAME,
    Design,
    DesignRow,
    Field,
    LayoutRecord,
    LayoutSummary,
    design_of,
    parse_accent,
    parse_footer_address,
    parse_layout_id,
    parse_layout_name,
    parse_name,
)
from herald.design.logos import LogoRef, parse_path_name, sha256_of, sniff
from herald.email.layout import Branding, Layout, compile_layout, default_source

NO_LAYOUT = "No such layout."
_LOGO_CACHE_BYTES = 4 * 1024 * 1024
# Per database (per process): logos never change, so a few are kept in memory.
_logos: WeakKeyDictionary[Database, OrderedDict[str, tuple[str, bytes]]] = WeakKeyDictionary()
_logos_lock = threading.Lock()


@dataclass(frozen=True)
class BrandingView:
    """The branding page: what the admin set, the configured defaults, what emails use."""

    row: DesignRow
    defaults: Branding
    effective: Branding


@dataclass(frozen=True)
class DesignService:
    db: Database
    settings: Settings

    @property
    def defaults(self) -> Branding:
        return Branding.from_settings(self.settings)

    async def current(self) -> Design:
        return await design_cache(self.db).design(self.settings)

    async def branding(self) -> BrandingView:
        async with self.db.connection() as conn:
            row = await repository.design(conn)
        design = design_of(row, self.defaults, self.settings.public_base_url)
        return BrandingView(row, self.defaults, design.branding)

    async def save_branding(
        self, *, name: str, accent: str, footer_address: str, user_id: uuid.UUID | None
    ) -> bool:
        """The form's values over the defaults; a value equal to its default that was never
        set stays "the configured default". False when nothing changed."""
        values = (parse_name(name), parse_accent(accent), parse_footer_address(footer_address))
        defaults = self.defaults
        configured = (defaults.name, defaults.accent.lower(), defaults.footer_address)
        async with self.db.transaction() as conn:
            await repository.lock(conn)
            now = (await repository.design(conn)).overrides
            current = (now.name, now.accent, now.footer_address)
            wanted = tuple(
                None if old is None and value == default else value
                for old, value, default in zip(current, values, configured, strict=True)
            )
            if wanted == current:
                return False
            await repository.set_branding(
                conn, name=wanted[0], accent=wanted[1], footer_address=wanted[2], user_id=user_id
            )
        design_cache(self.db).forget()
        return True

    async def reset(self, field: Field, user_id: uuid.UUID | None) -> None:
        """One value back to its configured default."""
        async with self.db.transaction() as conn:
            await repository.lock(conn)
            if field is Field.LOGO:
                await repository.set_logo(conn, logo_set=False, sha256=None, user_id=user_id)
            else:
                now = (await repository.design(conn)).overrides
                values = {
                    "name": now.name,
                    "accent": now.accent,
                    "footer_address": now.footer_address,
                    field.value: None,
                }
                await repository.set_branding(conn, **values, user_id=user_id)
        design_cache(self.db).forget()

    async def upload_logo(self, data: bytes, user_id: uuid.UUID | None) -> LogoRef:
        """Store ``data`` under its hash (kept if it is there already) and use it."""
        image = sniff(data)
        sha256 = sha256_of(data)
        async with self.db.transaction() as conn:
            await repository.lock(conn)
            await repository.insert_logo(conn, sha256, image, data, user_id)
            await repository.set_logo(conn, logo_set=True, sha256=sha256, user_id=user_id)
        design_cache(self.db).forget()
        return LogoRef(sha256, image.content_type)

    async def remove_logo(self, user_id: uuid.UUID | None) -> None:
        """No logo (the name instead), whatever is configured; the image stays stored."""
        async with self.db.transaction() as conn:
            await repository.lock(conn)
            await repository.set_logo(conn, logo_set=True, sha256=None, user_id=user_id)
        design_cache(self.db).forget()

    async def logo(self, name: str) -> tuple[str, bytes]:
        """A stored logo by its public name ``{sha256}.{ext}``: content type and bytes
        (a few kept in memory: logos never change)."""
        parsed = parse_path_name(name)
        if parsed is None:
            raise NotFound("no such logo")
        sha256, content_type = parsed
        with _logos_lock:
            kept = _logos.setdefault(self.db, OrderedDict())
            found = kept.get(sha256)
            if found is not None:
                kept.move_to_end(sha256)
        if found is None:
            async with self.db.connection() as conn:
                found = await repository.logo(conn, sha256)
            if found is None:
                raise NotFound("no such logo")
            _keep_logo(kept, sha256, found)
        if found[0] != content_type:
            raise NotFound("no such logo")
        return found

    # Layouts

    async def layouts(self) -> list[LayoutSummary]:
        """The built-in layout first, then the stored ones by name."""
        async with self.db.connection() as conn:
            row = await repository.design(conn)
            stored = await repository.layouts(conn, row.layout_id)
        builtin = LayoutSummary(
            BUILTIN_ID, BUILTIN_NAME, builtin=True, active=row.layout_id is None
        )
        return [builtin, *stored]

    async def layout(self, raw_id: str) -> LayoutRecord:
        layout_id = parse_layout_id(raw_id)
        if layout_id == BUILTIN_ID:
            async with self.db.connection() as conn:
                active = (await repository.design(conn)).layout_id is None
            return LayoutRecord(
                BUILTIN_ID, BUILTIN_NAME, default_source(), builtin=True, active=active
            )
        if not layout_id:
            raise NotFound(NO_LAYOUT)
        async with self.db.connection() as conn:
            found = await repository.layout(conn, uuid.UUID(layout_id))
            in_use = (await repository.design(conn)).layout_id
        if found is None:
            raise NotFound(NO_LAYOUT)
        name, source = found
        return LayoutRecord(
            layout_id, name, source, builtin=False, active=in_use == uuid.UUID(layout_id)
        )

    async def check_layout(self, source: str) -> Layout:
        """``source`` compiled with the branding in force; a ValidationError names what is
        wrong (the compiler's message, or the missing placeholder)."""
        branding = (await self.current()).branding
        return await asyncio.to_thread(compile_layout, _normalise(source), branding)

    async def copy_layout(self, raw_id: str, user_id: uuid.UUID | None) -> str:
        original = await self.layout(raw_id)
        name = f"Copy of {original.name}"[:MAX_LAYOUT_NAME]
        async with self.db.transaction() as conn:
            await repository.lock(conn)
            new_id = await repository.insert_layout(conn, name, original.source, user_id)
            await repository.bump(conn, user_id)
        design_cache(self.db).forget()
        return str(new_id)

    async def save_layout(
        self, raw_id: str, *, name: str, source: str, user_id: uuid.UUID | None
    ) -> None:
        layout_id = _stored_id(raw_id, "The built-in layout cannot be changed: copy it.")
        clean_name = parse_layout_name(name)
        clean_source = _normalise(source)
        await self.check_layout(clean_source)
        async with self.db.transaction() as conn:
            await repository.lock(conn)
            if not await repository.update_layout(
                conn, layout_id, clean_name, clean_source, user_id
            ):
                raise NotFound(NO_LAYOUT)
            await repository.bump(conn, user_id)
        design_cache(self.db).forget()

    async def delete_layout(self, raw_id: str, user_id: uuid.UUID | None) -> str:
        """Delete a stored layout that is not in use; its name."""
        layout = await self.layout(raw_id)
        layout_id = _stored_id(raw_id, "The built-in layout cannot be deleted.")
        async with self.db.transaction() as conn:
            await repository.lock(conn)
            if not await repository.delete_layout(conn, layout_id):
                if await repository.layout(conn, layout_id) is None:
                    raise NotFound(NO_LAYOUT)
                raise Conflict(
                    "This layout is used for all emails: use another one first, then delete it."
                )
            await repository.bump(conn, user_id)
        design_cache(self.db).forget()
        return layout.name

    async def activate(self, raw_id: str, user_id: uuid.UUID | None) -> str:
        """Make a layout the one every email uses (checked against the branding in force
        first); its name."""
        layout = await self.layout(raw_id)
        if not layout.builtin:
            await self.check_layout(layout.source)
        async with self.db.transaction() as conn:
            await repository.lock(conn)
            new = None if layout.builtin else uuid.UUID(layout.id)
            if new is not None and await repository.layout(conn, new) is None:
                raise NotFound(NO_LAYOUT)
            await repository.set_layout(conn, new, user_id)
        design_cache(self.db).forget()
        return layout.name


def _stored_id(raw_id: str, builtin_message: str) -> uuid.UUID:
    layout_id = parse_layout_id(raw_id)
    if layout_id == BUILTIN_ID:
        raise ValidationError(builtin_message)
    if not layout_id:
        raise NotFound(NO_LAYOUT)
    return uuid.UUID(layout_id)


def _normalise(source: str) -> str:
    return source.replace("\r\n", "\n")


def _keep_logo(
    kept: OrderedDict[str, tuple[str, bytes]], sha256: str, found: tuple[str, bytes]
) -> None:
    with _logos_lock:
        kept[sha256] = found
        while sum(len(data) for _, data in kept.values()) > _LOGO_CACHE_BYTES:
            kept.popitem(last=False)
