"""Issue 14 item 4: the email design stored in Postgres (migration 0017), its version, and
the per-process cache every email reads it through."""

from __future__ import annotations

import asyncio
import re

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.design import current
from herald.design.current import DesignCache, current_design
from herald.design.domain import BUILTIN_ID, Field
from herald.design.service import DesignService
from herald.email.layout import default_source
from tests.support.database import make_settings
from tests.unit.design.test_logos import gif, png

CUSTOM = default_source().replace("{{ content }}", "<p>custom</p>{{ content }}")


async def version(db: Database) -> int:
    async with db.connection() as conn:
        value: int = await conn.fetchval("SELECT version FROM email_design")
    return value


async def test_the_configured_branding_until_the_admin_sets_values(
    db: Database, database_url: str
) -> None:
    settings = make_settings(
        database_url,
        newsletter={"name": "Env News", "accent": "#123456", "footer_address": "1 Env Road"},
    )
    service = DesignService(db, settings)
    design = await service.current()
    assert (design.branding.name, design.branding.accent) == ("Env News", "#123456")
    assert design.layout_source is None
    before = await version(db)

    # Unchanged values stay "the configured default"; a changed one is set here.
    assert await service.save_branding(
        name="Env News", accent="#AA0000", footer_address="1 Env Road", user_id=None
    )
    view = await service.branding()
    assert view.row.overrides.name is None
    assert view.row.overrides.footer_address is None
    assert view.row.overrides.accent == "#aa0000"
    assert view.effective.accent == "#aa0000"
    assert await version(db) == before + 1
    assert (await service.current()).branding.accent == "#aa0000"
    # The same form again changes nothing: no new version.
    assert not await service.save_branding(
        name="Env News", accent="#aa0000", footer_address="1 Env Road", user_id=None
    )
    assert await version(db) == before + 1

    await service.save_branding(name="Mine", accent="#aa0000", footer_address="", user_id=None)
    assert (await service.current()).branding.footer_address == ""
    await service.reset(Field.FOOTER_ADDRESS, None)
    await service.reset(Field.ACCENT, None)
    branding = (await service.current()).branding
    assert (branding.name, branding.accent, branding.footer_address) == (
        "Mine",
        "#123456",
        "1 Env Road",
    )
    with pytest.raises(ValidationError, match="hex colour"):
        await service.save_branding(name="x", accent="blue", footer_address="", user_id=None)


async def test_logos_are_kept_by_hash_and_never_overwritten(
    db: Database, settings: Settings
) -> None:
    service = DesignService(db, settings)
    first = await service.upload_logo(png(), None)
    url = (await service.current()).branding.logo_url
    assert url == f"http://herald.test/brand/logo/{first.sha256}.png"
    second = await service.upload_logo(gif(), None)
    assert (await service.current()).branding.logo_url.endswith(f"{second.sha256}.gif")
    # The first logo is still served: emails already in inboxes keep it.
    assert await service.logo(f"{first.sha256}.png") == ("image/png", png())
    again = await service.upload_logo(png(), None)  # the same bytes: the same logo
    assert again == first
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM email_logos") == 2
    with pytest.raises(NotFound):
        await service.logo(f"{first.sha256}.gif")  # the wrong type for these bytes
    with pytest.raises(NotFound):
        await service.logo("0" * 64 + ".png")

    await service.remove_logo(None)
    assert (await service.current()).branding.logo_url == ""
    await service.reset(Field.LOGO, None)
    assert (await service.current()).branding.logo_url == settings.newsletter.logo_url


async def test_layouts_copy_validate_activate_and_delete(db: Database, settings: Settings) -> None:
    service = DesignService(db, settings)
    listed = await service.layouts()
    assert [(row.id, row.builtin, row.active) for row in listed] == [(BUILTIN_ID, True, True)]

    copy_id = await service.copy_layout(BUILTIN_ID, None)
    copy = await service.layout(copy_id)
    assert (copy.name, copy.source, copy.active) == (
        "Copy of Herald default",
        default_source(),
        False,
    )

    broken = re.sub(r"\{\{#unsubscribe_url\}\}.*?\{\{/unsubscribe_url\}\}", "", default_source())
    with pytest.raises(ValidationError, match=re.escape("no {{ unsubscribe_url }} placeholder")):
        await service.save_layout(copy_id, name="Broken", source=broken, user_id=None)
    # The placeholder only as a section's name is no link either.
    hidden = default_source().replace('href="{{ unsubscribe_url }}"', 'href="#"')
    with pytest.raises(ValidationError, match="no unsubscribe link"):
        await service.save_layout(copy_id, name="Broken", source=hidden, user_id=None)
    with pytest.raises(ValidationError, match="does not compile"):
        await service.save_layout(
            copy_id, name="Broken", source="<mjml><mj-body>{{ content }}", user_id=None
        )
    assert (await service.layout(copy_id)).name == "Copy of Herald default"  # nothing saved
    with pytest.raises(ValidationError, match="cannot be changed"):
        await service.save_layout(BUILTIN_ID, name="x", source=CUSTOM, user_id=None)

    before = await version(db)
    await service.save_layout(
        copy_id, name="Custom", source=CUSTOM.replace("\n", "\r\n"), user_id=None
    )
    assert (await service.layout(copy_id)).source == CUSTOM
    assert await version(db) == before + 1
    assert (await service.current()).layout_source is None  # saved, not in use yet

    assert await service.activate(copy_id, None) == "Custom"
    assert (await service.current()).layout_source == CUSTOM
    with pytest.raises(Conflict, match="used for all emails"):
        await service.delete_layout(copy_id, None)
    with pytest.raises(ValidationError, match="cannot be deleted"):
        await service.delete_layout(BUILTIN_ID, None)

    await service.activate(BUILTIN_ID, None)
    assert (await service.current()).layout_source is None
    assert await service.delete_layout(copy_id, None) == "Custom"
    with pytest.raises(NotFound):
        await service.layout(copy_id)
    for missing in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(NotFound):
            await service.activate(missing, None)


async def test_another_process_sees_a_change_within_the_check_interval(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = DesignCache(db, check_seconds=0.2)  # another process's cache
    assert (await other.design(settings)).branding.accent == settings.newsletter.accent
    queries = 0
    real = current.repository.version

    async def counted(conn: object) -> int:
        nonlocal queries
        queries += 1
        return await real(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(current.repository, "version", counted)
    await DesignService(db, settings).save_branding(
        name="N", accent="#00aa00", footer_address="", user_id=None
    )
    # Within the interval: the cached design, no query.
    await asyncio.gather(*(other.design(settings) for _ in range(50)))
    assert queries == 0
    # After it: one version check per interval, and the new design.
    deadline = asyncio.get_running_loop().time() + 5
    while (await other.design(settings)).branding.accent != "#00aa00":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert 1 <= queries <= 3
    # This process's own cache saw it at once (the service forgot what it had).
    assert (await current_design(db, settings)).branding.accent == "#00aa00"
