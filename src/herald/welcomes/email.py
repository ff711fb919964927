"""A welcome email rendered the way an issue is: the Markdown body to HTML and text, both
Jinja templates in the issues' bounded sandbox, the HTML placed into the email layout
(header, footer with the unsubscribe and preferences links), ``List-Unsubscribe``,
``List-Unsubscribe-Post`` and ``List-Id`` headers. Templates are compiled once per saved
version and design (a small cache per process), rendered per reader.

The personalisation is an issue's: ``{{ subscriber.name }}``, ``{{ subscriber.email }}``,
``{{ subscriber.attributes.… }}``, ``{{ unsubscribe_url }}``, and ``{{ issue.title }}``
(the subject). Everything here is CPU work: callers run it through
:func:`herald.issues.rendering.off_loop`.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime

from herald.core.errors import ValidationError
from herald.design.domain import Design
from herald.email.message import EmailMessage
from herald.issues.markdown import markdown_bodies
from herald.issues.previews import IssuePreview
from herald.issues.rendering import (
    NO_ATTRIBUTES,
    Attributes,
    CompiledIssue,
    compile_issue,
    issue_email,
    render_or_refuse,
)
from herald.issues.sandbox import sandbox

SAMPLE_NAME = "Sample Subscriber"
SAMPLE_EMAIL = "sample@example.com"
_CACHE_SIZE = 64
_cache: OrderedDict[tuple[object, ...], CompiledIssue] = OrderedDict()
_cache_lock = threading.Lock()


def compile_welcome(subject: str, body: str, list_name: str, design: Design) -> CompiledIssue:
    """The welcome's templates in the design's layout; a template that does not compile is
    a 400 naming the body's line (the Markdown source as written)."""
    try:
        sandbox(autoescape=False).parse(body)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the editor's to fix
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "message", None) or str(exc)
        where = f" on line {line}" if line else ""
        raise ValidationError(
            f"the body has a template error{where}: {message}", field="body"
        ) from None
    html, text = markdown_bodies(body)  # its Jinja constructs intact
    try:
        compiled = compile_issue(
            subject, html, text, design.branding, layout_source=design.layout_source
        )
    except ValidationError as exc:
        raise ValidationError(f"the body cannot be used: {exc.message}", field="body") from None
    reason = f"You receive this because you joined {list_name} ({design.branding.name})."
    return replace(compiled, reason=reason)


def compiled_for(
    list_id: uuid.UUID,
    updated_at: datetime,
    subject: str,
    body: str,
    list_name: str,
    design: Design,
) -> CompiledIssue:
    """:func:`compile_welcome`, cached by the saved version and the design's."""
    key = (list_id, updated_at, list_name, design.version, design.branding, design.layout_source)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    compiled = compile_welcome(subject, body, list_name, design)
    with _cache_lock:
        _cache[key] = compiled
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def welcome_email(
    compiled: CompiledIssue,
    *,
    sender: str,
    recipient: str,
    name: str,
    unsubscribe_url: str,
    base_url: str,
    attributes: Attributes = NO_ATTRIBUTES,
) -> EmailMessage:
    """One reader's welcome email, under the sandbox's time limit (a failure is a
    ValidationError naming it)."""
    return render_or_refuse(
        lambda: issue_email(
            compiled,
            sender=sender,
            recipient=recipient,
            name=name,
            unsubscribe_url=unsubscribe_url,
            base_url=base_url,
            attributes=attributes,
        )
    )


def sample(compiled: CompiledIssue, *, unsubscribe_url: str) -> IssuePreview:
    """The welcome as the sample reader gets it (the editor's preview; the save's check):
    a template that fails to render is a 400 saying why."""
    try:
        html, text = render_or_refuse(
            lambda: compiled.render(
                name=SAMPLE_NAME, email=SAMPLE_EMAIL, unsubscribe_url=unsubscribe_url
            )
        )
    except ValidationError as exc:
        message = exc.message.replace("the issue cannot be rendered", "it cannot be rendered")
        raise ValidationError(f"the welcome email: {message}", field="body") from None
    return IssuePreview(compiled.title, html, text)
