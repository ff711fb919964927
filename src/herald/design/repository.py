"""The only door to ``email_design``, ``email_logos`` and ``email_layouts`` (migration 0017)."""

from __future__ import annotations

import uuid

import asyncpg

from herald.core import sql
from herald.core.db import Connection
from herald.design.domain import DesignRow, LayoutSummary, Overrides
from herald.design.logos import Image, LogoRef

Q = sql.load("herald.design")


async def version(conn: Connection) -> int:
    value: int = await conn.fetchval(Q["version"])
    return value


def _design(row: asyncpg.Record) -> DesignRow:
    logo = LogoRef(row["logo_sha256"], row["logo_content_type"]) if row["logo_sha256"] else None
    return DesignRow(
        overrides=Overrides(
            name=row["name"],
            accent=row["accent"],
            footer_address=row["footer_address"],
            logo_set=row["logo_set"],
            logo=logo,
            logo_size=(row["logo_width"], row["logo_height"]) if logo else None,
        ),
        version=row["version"],
        layout_id=row["layout_id"],
        layout_name=row["layout_name"],
        layout_source=row["layout_source"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


async def design(conn: Connection) -> DesignRow:
    row = await conn.fetchrow(Q["design"])
    assert row is not None, "migration 0017 inserts the design row"
    return _design(row)


async def lock(conn: Connection) -> int:
    value: int = await conn.fetchval(Q["lock_design"])
    return value


async def set_branding(
    conn: Connection,
    *,
    name: str | None,
    accent: str | None,
    footer_address: str | None,
    user_id: uuid.UUID | None,
) -> int:
    value: int = await conn.fetchval(Q["set_branding"], name, accent, footer_address, user_id)
    return value


async def set_logo(
    conn: Connection, *, logo_set: bool, sha256: str | None, user_id: uuid.UUID | None
) -> int:
    value: int = await conn.fetchval(Q["set_logo"], logo_set, sha256, user_id)
    return value


async def set_layout(
    conn: Connection, layout_id: uuid.UUID | None, user_id: uuid.UUID | None
) -> int:
    value: int = await conn.fetchval(Q["set_layout"], layout_id, user_id)
    return value


async def bump(conn: Connection, user_id: uuid.UUID | None) -> int:
    value: int = await conn.fetchval(Q["bump"], user_id)
    return value


async def insert_logo(
    conn: Connection, sha256: str, image: Image, data: bytes, user_id: uuid.UUID | None
) -> None:
    await conn.execute(
        Q["insert_logo"], sha256, image.content_type, data, image.width, image.height, user_id
    )


async def logo(conn: Connection, sha256: str) -> tuple[str, bytes] | None:
    row = await conn.fetchrow(Q["logo"], sha256)
    return (row["content_type"], bytes(row["data"])) if row else None


async def layouts(conn: Connection, active: uuid.UUID | None) -> list[LayoutSummary]:
    return [
        LayoutSummary(
            id=str(row["id"]),
            name=row["name"],
            builtin=False,
            active=row["id"] == active,
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
        )
        for row in await conn.fetch(Q["layouts"])
    ]


async def layout(conn: Connection, layout_id: uuid.UUID) -> tuple[str, str] | None:
    row = await conn.fetchrow(Q["layout"], layout_id)
    return (row["name"], row["source"]) if row else None


async def insert_layout(
    conn: Connection, name: str, source: str, user_id: uuid.UUID | None
) -> uuid.UUID:
    value: uuid.UUID = await conn.fetchval(Q["insert_layout"], name, source, user_id)
    return value


async def update_layout(
    conn: Connection, layout_id: uuid.UUID, name: str, source: str, user_id: uuid.UUID | None
) -> bool:
    return await conn.fetchval(Q["update_layout"], layout_id, name, source, user_id) is not None


async def delete_layout(conn: Connection, layout_id: uuid.UUID) -> bool:
    return await conn.fetchval(Q["delete_layout"], layout_id) is not None
