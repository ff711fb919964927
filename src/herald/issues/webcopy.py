""" "View in browser": a signed, per-reader web copy of an issue.

Every issue email links to ``/v/{token}``, where the token is the issue id and the
subscriber id (32 bytes, base64url) plus a 128-bit HMAC of them (``core.signing``, its own
purpose key): 66 URL-safe characters, nothing stored, one HMAC per recipient in the
worker. The page is exactly the email that reader got (their name, their working
unsubscribe link), rendered again from the issue and the subscriber's current row, for an
issue that went out (publishing or sent), whatever the subscriber's status (it works after
they unsubscribed). No login: the token is the credential, and it names one reader of one
issue. A token that is malformed, tampered with, or names a draft or scheduled issue or a
deleted subscriber is the same :class:`NotFound` (no oracle).
"""

from __future__ import annotations

import base64
import hmac
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import NotFound, ValidationError
from herald.core.signing import keyed, mac, purpose_key
from herald.design.current import current_design
from herald.design.domain import Design
from herald.issues import repository
from herald.issues.rendering import (
    CompiledIssue,
    attributes,
    compile_issue,
    off_loop,
    render_or_refuse,
)
from herald.subscriptions.unsubscribe import unsubscribe_url

_PURPOSE = "issue-web-copy"
_MAC_CHARS = 22  # 128 bits of base64url
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}")
PATH = "/v/"
NOT_FOUND = "This web copy does not exist (any more): use the link in your email."
ROBOTS_META = '<meta name="robots" content="noindex, nofollow">'
_CACHE_SIZE = 16


def make_token(settings: Settings, issue_id: uuid.UUID, subscriber_id: uuid.UUID) -> str:
    ident = base64.urlsafe_b64encode(issue_id.bytes + subscriber_id.bytes).rstrip(b"=").decode()
    return f"{ident}.{mac(settings, _PURPOSE, ident)[:_MAC_CHARS]}"


def parse_token(settings: Settings, token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The (issue id, subscriber id) a token names, or None when it is not one of ours.
    The shape is checked first: no HMAC for junk, and only ASCII reaches compare_digest."""
    if not _TOKEN.fullmatch(token):
        return None
    ident, _, signature = token.partition(".")
    if not hmac.compare_digest(signature, mac(settings, _PURPOSE, ident)[:_MAC_CHARS]):
        return None
    raw = base64.urlsafe_b64decode(ident + "=")
    return uuid.UUID(bytes=raw[:16]), uuid.UUID(bytes=raw[16:])


class ViewLinks:
    """One issue's web-copy URLs, one per recipient (the worker's hot path): the key's
    HMAC states and the issue's bytes are prepared once, so a recipient costs one HMAC
    finish (<1 µs) and two base64 encodings. The same tokens as :func:`make_token`."""

    def __init__(self, settings: Settings, issue_id: uuid.UUID) -> None:
        self._mac = keyed(purpose_key(settings, _PURPOSE))
        self._issue = issue_id.bytes
        self.issue_param = issue_param(issue_id)  # for the issue's unsubscribe links
        # base64url plus a dot: every character of a token is URL-safe as it is.
        self._prefix = f"{settings.public_base_url}{PATH}"

    def __call__(self, subscriber_id: uuid.UUID) -> str:
        ident = base64.urlsafe_b64encode(self._issue + subscriber_id.bytes)[:43]
        signature = base64.urlsafe_b64encode(self._mac.digest(ident))[:_MAC_CHARS]
        return self._prefix + (ident + b"." + signature).decode()


def issue_param(issue_id: uuid.UUID) -> str:
    """What an issue's unsubscribe link carries after the reader's token, so that one click
    unsubscribes from that issue's lists only."""
    return f"&issue={issue_id}"


def view_url(settings: Settings, issue_id: uuid.UUID, subscriber_id: uuid.UUID) -> str:
    return ViewLinks(settings, issue_id)(subscriber_id)


def with_robots_meta(html: str) -> str:
    """The email's HTML as a page search engines leave alone (the X-Robots-Tag header says
    it too; the meta survives a saved copy)."""
    head = html.find("<head>")
    if head < 0:
        return ROBOTS_META + html
    at = head + len("<head>")
    return html[:at] + ROBOTS_META + html[at:]


_compiled: OrderedDict[tuple[uuid.UUID, Design], CompiledIssue] = OrderedDict()
_compiled_lock = threading.Lock()


def _compile(data: repository.RenderData, design: Design) -> CompiledIssue:
    """An issue that went out no longer changes: compiled once per process and design (a
    few kept). The copy is in the design in force now, as the emails still to send are."""
    key = (data.id, design)
    with _compiled_lock:
        compiled = _compiled.get(key)
        if compiled is not None:
            _compiled.move_to_end(key)
            return compiled
    compiled = compile_issue(
        data.title,
        data.html,
        data.text,
        design.branding,
        preheader=data.preheader,
        layout_source=design.layout_source,
    )
    with _compiled_lock:
        _compiled[key] = compiled
        while len(_compiled) > _CACHE_SIZE:
            _compiled.popitem(last=False)
    return compiled


@dataclass(frozen=True)
class WebCopies:
    db: Database
    settings: Settings

    async def page(self, token: str) -> str:
        """The reader's copy of the issue as an HTML document, or NotFound."""
        ids = parse_token(self.settings, token)
        if ids is None:
            raise NotFound(NOT_FOUND)
        issue_id, subscriber_id = ids
        async with self.db.connection() as conn:
            data = await repository.web_copy(conn, issue_id, subscriber_id)
        if data is None:
            raise NotFound(NOT_FOUND)
        settings, design = self.settings, await current_design(self.db, self.settings)

        def render() -> str:
            compiled = _compile(data.issue, design)
            html, _ = compiled.render(
                name=data.name,
                email=data.email,
                unsubscribe_url=unsubscribe_url(settings, subscriber_id) + issue_param(issue_id),
                view_url=view_url(settings, issue_id, subscriber_id),
                attributes=attributes(data.attributes),
            )
            return str(html)

        try:
            html = await off_loop(lambda: render_or_refuse(render))
        except ValidationError:  # the reader's delivery failed the same way: nothing to show
            raise NotFound(NOT_FOUND) from None
        return with_robots_meta(html)
