"""A sign-up from a public form: the reader, the lists chosen, and the consent record.

Pure values and rules (no framework, no database), parsed from what ``POST
/subscriptions`` received:

* ``list``: repeated list slugs (none: the ``default`` list). At most
  :data:`MAX_LISTS`; each must look like a slug (the service then refuses one that is
  unknown or private, naming it).
* ``source``: optional, the page the form was on; only ``l/<slug>`` (the public page of
  a list, ``/l/{slug}``) is accepted, and the membership's source is ``form:l/<slug>``
  instead of ``form``.
* The consent record of every membership written: the source, the client's address
  (None when it is not an IP address) and its user agent (at most
  :data:`MAX_USER_AGENT` characters).

:func:`plan` decides, from the address's state and the lists' opt-in modes, which
memberships are confirmed at once and whether a confirmation email is needed.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from herald.core.errors import ValidationError
from herald.lists.domain import DEFAULT_SLUG, MAX_SLUG, SLUG_PATTERN, OptIn, is_slug
from herald.subscriptions.domain import NewSubscriber, SubscriptionStatus

MAX_LISTS = 20
MAX_USER_AGENT = 500
_SOURCE_PAGE = re.compile(f"l/({SLUG_PATTERN})")


@dataclass(frozen=True, slots=True)
class Consent:
    source: str
    ip: str | None
    user_agent: str | None

    @classmethod
    def of_form(cls, *, source_page: object, ip: str, user_agent: str | None) -> Consent:
        return cls.of_request(_form_source(source_page), ip=ip, user_agent=user_agent)

    @classmethod
    def of_request(cls, source: str, *, ip: str, user_agent: str | None) -> Consent:
        """The record of a reader's own choice in a request: the client IP when it is
        one (NULL otherwise, for the ``inet`` column), the user agent cut to
        :data:`MAX_USER_AGENT` characters."""
        return cls(
            source=source,
            ip=_ip_or_none(ip),
            user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
        )


@dataclass(frozen=True, slots=True)
class SignUp:
    new: NewSubscriber
    # The slugs chosen, without repeats, in the order given; empty: the default list.
    lists: tuple[str, ...]
    consent: Consent

    @classmethod
    def parse(
        cls,
        *,
        name: object,
        email: object,
        lists: object,
        source: object,
        ip: str,
        user_agent: str | None,
    ) -> SignUp:
        """The fields of ``POST /subscriptions``: a 400 naming the first field at fault."""
        new = NewSubscriber.parse(name=name, email=email)
        return cls(
            new,
            parse_lists(lists),
            Consent.of_form(source_page=source, ip=ip, user_agent=user_agent),
        )

    @property
    def slugs(self) -> tuple[str, ...]:
        return self.lists or (DEFAULT_SLUG,)

    @property
    def chose_lists(self) -> bool:
        return bool(self.lists)


def parse_lists(raw: object) -> tuple[str, ...]:
    """The ``list`` field(s): None, a string, or a sequence of strings."""
    if raw is None:
        return ()
    values: Sequence[object] = [raw] if isinstance(raw, str) else raw  # type: ignore[assignment]
    if not isinstance(values, list | tuple):
        raise ValidationError("list must be a list slug or a list of them", field="list")
    if len(values) > MAX_LISTS:
        raise ValidationError(
            f"too many lists: at most {MAX_LISTS} per sign-up (got {len(values):,} list fields)",
            field="list",
        )
    slugs: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ValidationError("list must be a list slug or a list of them", field="list")
        slug = value.strip()
        if not slug:
            continue
        if not is_slug(slug):
            raise ValidationError(unknown_lists_message([slug]), field="list")
        if slug not in slugs:
            slugs.append(slug)
    return tuple(slugs)


def unknown_lists_message(slugs: Iterable[str]) -> str:
    shown = ", ".join(repr(_shorten(s)) for s in slugs)
    return f"list {shown} does not exist or is not open to sign-ups"


def _form_source(raw: object) -> str:
    if raw is None or raw == "":
        return "form"
    if not isinstance(raw, str):
        raise ValidationError("source must be a string", field="source")
    found = _SOURCE_PAGE.fullmatch(raw.strip())
    if found is None or len(found.group(1)) > MAX_SLUG:
        raise ValidationError(
            f"source {_shorten(raw)!r} is not a page of Herald's (l/<list slug>)", field="source"
        )
    return f"form:{found.group(0)}"


def _ip_or_none(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- what a sign-up does ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChosenList:
    id: uuid.UUID
    slug: str
    opt_in: OptIn


@dataclass(frozen=True, slots=True)
class Plan:
    # Per chosen list, in order: whether its membership is confirmed at once.
    confirm_now: tuple[bool, ...]
    # For a new address: insert it confirmed (no email) rather than pending.
    confirm_address: bool


def plan(
    status: SubscriptionStatus | None, lists: Sequence[ChosenList], *, force_double: bool
) -> Plan:
    """What a sign-up writes, before looking at memberships already there.

    A single-opt-in list's membership is confirmed at once, except for an address that
    left everything (``unsubscribed``, or on the suppression list as unsubscribed): its
    comeback always goes through double opt-in. A new address whose lists are all
    single opt-in is confirmed without an email; otherwise it is pending and gets one.
    (For a new address the ``sign_up`` statement applies the same rule in SQL, so that a
    sign-up is one round trip; the integration tests hold both to it.)
    """
    double_only = force_double or status is SubscriptionStatus.UNSUBSCRIBED
    confirm_now = tuple(not double_only and chosen.opt_in is OptIn.SINGLE for chosen in lists)
    return Plan(
        confirm_now=confirm_now,
        confirm_address=status is None and bool(confirm_now) and all(confirm_now),
    )
