"""The use cases on lists: create, change and delete them (admin pages and API), show a
public list's sign-up page, and add or remove a subscriber by API.

Rules that hold whoever asks:

* A slug is unique: a taken one is a ``Conflict``, also when two requests race for it
  (``ON CONFLICT DO NOTHING`` makes the second wait for the first, then find it taken).
* The ``default`` list keeps its slug and is never deleted.
* A list an issue targets (``issue_lists``, ``ON DELETE RESTRICT``) is not deleted:
  ``Conflict`` naming the issues. A list with members is deleted only when the caller
  says so (:class:`DeleteOutcome`); its memberships go with it.
* Membership changes by API respect the reader: an address on the suppression list or
  unsubscribed from everything is not added, and a reader who left a list is not put
  back (only they can join again, through a form).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.core.telemetry import get_logger
from herald.lists import repository
from herald.lists.domain import (
    ListChange,
    ListDraft,
    Member,
    MemberStatus,
    NewsList,
    check_change,
    parse_slug,
)
from herald.lists.snippet import form_snippet

log = get_logger("herald.lists")

NO_LIST = "no such list"
NO_SUBSCRIBER = "no such subscriber"
MEMBERS_PER_PAGE = 50
SHOWN_LISTS = 1000


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """``deleted`` False: the list has members and the caller did not confirm."""

    news_list: NewsList
    deleted: bool


@dataclass(frozen=True, slots=True)
class MemberChange:
    member: Member
    created: bool


@dataclass(frozen=True, slots=True)
class ListOverview:
    """A list's admin page: the list and one page of its members."""

    news_list: NewsList
    members: list[Member]
    more: bool


@dataclass(frozen=True, slots=True)
class ListIndex:
    """The admin's page of lists: the first :data:`SHOWN_LISTS`, and whether there are
    more (the API pages through every one)."""

    lists: list[NewsList]
    more: bool


@dataclass(frozen=True)
class ListService:
    db: Database
    settings: Settings

    async def lists(self) -> ListIndex:
        """The lists of the admin's page, the default first, then by name."""
        async with self.db.connection() as conn:
            rows = await repository.all_lists(conn, SHOWN_LISTS + 1)
        return ListIndex(rows[:SHOWN_LISTS], len(rows) > SHOWN_LISTS)

    async def page(
        self, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> tuple[list[NewsList], bool]:
        """A page of lists, oldest first, and whether more follow."""
        async with self.db.connection() as conn:
            rows = await repository.list_page(conn, after, limit + 1)
        return rows[:limit], len(rows) > limit

    async def get(self, list_id: uuid.UUID) -> NewsList:
        async with self.db.connection() as conn:
            found = await repository.by_id(conn, list_id)
        if found is None:
            raise NotFound(NO_LIST)
        return found

    async def public(self, slug: str) -> NewsList:
        """A public list by its slug; a private or unknown one is not found (alike)."""
        try:
            slug = parse_slug(slug)
        except ValidationError:
            raise NotFound(NO_LIST) from None
        async with self.db.connection() as conn:
            found = await repository.public_by_slug(conn, slug)
        if found is None:
            raise NotFound(NO_LIST)
        return found

    def snippet(self, news_list: NewsList) -> str:
        return form_snippet(self.settings.public_base_url, news_list)

    async def create(self, draft: ListDraft) -> NewsList:
        async with self.db.transaction() as conn:
            list_id = await repository.insert(conn, draft)
            created = await repository.by_id(conn, list_id)
        assert created is not None  # inserted in this transaction
        log.info("list created", list_id=str(list_id), slug=draft.slug)
        return created

    async def update(self, list_id: uuid.UUID, change: ListDraft | ListChange) -> NewsList:
        """The list with ``change`` (a whole draft from the edit form, or the API's
        partial one) applied."""
        async with self.db.transaction() as conn:
            current = await repository.lock(conn, list_id)
            if current is None:
                raise NotFound(NO_LIST)
            wanted = change.applied_to(current.draft) if isinstance(change, ListChange) else change
            check_change(current, wanted)
            if wanted != current.draft:
                await repository.update(conn, list_id, wanted)
            updated = await repository.by_id(conn, list_id)
        assert updated is not None  # locked in this transaction
        return updated

    async def delete(self, list_id: uuid.UUID, *, confirmed: bool) -> DeleteOutcome:
        async with self.db.transaction() as conn:
            locked = await repository.lock(conn, list_id)
            if locked is None:
                raise NotFound(NO_LIST)
            if locked.is_default:
                raise Conflict(
                    "the default list cannot be deleted: every sign-up without a list joins it"
                )
            titles = await repository.issues_targeting(conn, list_id)
            if titles:
                named = ", ".join(f"'{title}'" for title in titles)
                raise Conflict(
                    f"issues target this list ({named}): it cannot be deleted while they do"
                )
            current = await repository.by_id(conn, list_id)
            assert current is not None  # locked in this transaction
            if current.counts.total and not confirmed:
                return DeleteOutcome(current, deleted=False)
            await repository.delete(conn, list_id)
        log.info("list deleted", list_id=str(list_id), members=current.counts.total)
        return DeleteOutcome(current, deleted=True)

    async def members(
        self,
        list_id: uuid.UUID,
        *,
        status: MemberStatus | None,
        after: uuid.UUID | None,
        limit: int,
    ) -> tuple[list[Member], bool]:
        """A page of the list's members in subscriber id order, and whether more follow."""
        view = await self.overview(list_id, status=status, after=after, limit=limit)
        return view.members, view.more

    async def overview(
        self,
        list_id: uuid.UUID,
        *,
        status: MemberStatus | None,
        after: uuid.UUID | None,
        limit: int = MEMBERS_PER_PAGE,
    ) -> ListOverview:
        """The list and a page of its members: on one connection, the list read once."""
        async with self.db.connection() as conn:
            news_list = await repository.by_id(conn, list_id)
            if news_list is None:
                raise NotFound(NO_LIST)
            rows = await repository.members(
                conn, list_id, status=status, after=after, limit=limit + 1
            )
        return ListOverview(news_list, rows[:limit], len(rows) > limit)

    async def add_member(
        self, list_id: uuid.UUID, subscriber_id: uuid.UUID, status: MemberStatus, source: str
    ) -> MemberChange:
        """Add a subscriber to a list, ``confirmed`` (the caller attests consent) or
        ``pending_confirmation``; a pending member may be confirmed so, a confirmed one
        stays confirmed. No email is sent."""
        async with self.db.transaction() as conn:
            if await repository.by_id(conn, list_id) is None:
                raise NotFound(NO_LIST)
            address = await repository.lock_subscriber(conn, subscriber_id)
            if address is None:
                raise NotFound(NO_SUBSCRIBER)
            if address.suppressed:
                raise Conflict(
                    "this address is on the suppression list: Herald never mails it again"
                )
            if address.status == "unsubscribed":
                raise Conflict(
                    "this subscriber unsubscribed from everything: only they can sign up again"
                )
            before = await repository.membership_status(conn, list_id, subscriber_id)
            if before is MemberStatus.UNSUBSCRIBED:
                raise Conflict(
                    "this subscriber left this list: only they can join it again, "
                    "through the list's form"
                )
            await repository.add_member(conn, list_id, subscriber_id, status, source)
            member = await repository.member(conn, list_id, subscriber_id)
        assert member is not None  # written in this transaction
        return MemberChange(member, created=before is None)

    async def remove_member(self, list_id: uuid.UUID, subscriber_id: uuid.UUID) -> Member:
        """The member unsubscribed from this list (idempotent); other lists stay."""
        async with self.db.transaction() as conn:
            if await repository.by_id(conn, list_id) is None:
                raise NotFound(NO_LIST)
            if await repository.membership_status(conn, list_id, subscriber_id) is None:
                raise NotFound("this subscriber is not a member of this list")
            await repository.remove_member(conn, list_id, subscriber_id)
            member = await repository.member(conn, list_id, subscriber_id)
        assert member is not None  # locked in this transaction
        return member
