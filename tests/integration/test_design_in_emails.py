"""Issue 14 item 4: every email is made with the design set in the admin — a published
issue (and its web copy, previews, test sends) and the confirmation email get the active
layout and the branding; a send in progress takes a change up at its next batch."""

from __future__ import annotations

import uuid

from herald.core.config import Settings
from herald.core.db import Database
from herald.design.service import DesignService
from herald.email.layout import default_source
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from herald.issues.views import IssueViews
from herald.issues.webcopy import WebCopies, make_token
from herald.subscriptions.domain import NewSubscriber
from herald.subscriptions.service import SubscriptionService
from tests.integration.test_subscriptions import queued_confirmations
from tests.support.newsletters import add_subscribers, drain, fan_out, issue_worker
from tests.support.queue import RecordingProvider
from tests.unit.design.test_logos import png

CUSTOM = default_source().replace("{{ content }}", "<p>Our own layout</p>{{ content }}")


async def design_it(db: Database, settings: Settings) -> str:
    """Branding, a logo and an active custom layout, as an admin sets them; the logo URL."""
    design = DesignService(db, settings)
    await design.save_branding(
        name="The Acme Letter", accent="#b5179e", footer_address="1 Main St", user_id=None
    )
    logo = await design.upload_logo(png(), None)
    layout_id = await design.copy_layout("default", None)
    await design.save_layout(layout_id, name="Acme", source=CUSTOM, user_id=None)
    await design.activate(layout_id, None)
    return f"{settings.public_base_url}{logo.path}"


async def publish(db: Database, settings: Settings, title: str = "Weekly") -> uuid.UUID:
    service = IssueService(db, settings)
    content = IssueContent(title=title, html="<p>Hello {{ subscriber.name }}</p>", text="Hello")
    issue_id = await service.create_draft(content, None)
    await service.publish(issue_id)
    return issue_id


def assert_designed(html: str, logo_url: str) -> None:
    assert "Our own layout" in html
    assert f'src="{logo_url}"' in html
    assert "#b5179e" in html
    assert "1 Main St" in html
    assert "The Acme Letter" in html  # the logo's alt text and the footer's reason


async def test_a_published_issue_uses_the_active_layout_and_branding(
    db: Database, settings: Settings
) -> None:
    logo_url = await design_it(db, settings)
    ids = await add_subscribers(db, 2)
    issue_id = await publish(db, settings)
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    assert len(provider.messages) == 2
    for message in provider.messages:
        assert_designed(message.html_body, logo_url)
        assert "You receive this because you subscribed to The Acme Letter." in message.html_body

    # The reader's web copy, the preview and a test send: the same design.
    copy = await WebCopies(db, settings).page(make_token(settings, issue_id, ids[0]))
    assert_designed(copy, logo_url)
    preview = await IssueViews(db, settings).preview(issue_id, name="A", email="a@example.com")
    assert_designed(preview.html, logo_url)


async def test_the_confirmation_email_uses_the_design(db: Database, settings: Settings) -> None:
    logo_url = await design_it(db, settings)
    new = NewSubscriber.parse(name="Ada", email="ada@example.com")
    await SubscriptionService(db, settings).subscribe(new)
    [message] = await queued_confirmations(db, "ada@example.com")
    assert_designed(message.html_body, logo_url)
    assert "Confirm your subscription to The Acme Letter." in message.html_body


async def test_a_send_in_progress_takes_a_new_design_up_at_its_next_batch(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 4)
    await publish(db, settings)
    provider = RecordingProvider()
    worker = issue_worker(db, settings, provider, batch_size=2)
    await fan_out(worker.issues)
    assert (await worker.run_once()).claimed == 2
    assert all("Herald newsletter" in m.html_body for m in provider.messages)

    # The admin changes the branding between two batches (in this process: seen at once;
    # another process sees it within the cache's 2 s).
    await DesignService(db, settings).save_branding(
        name="Renamed", accent="#3451c7", footer_address="", user_id=None
    )
    await drain(worker)
    later = provider.messages[2:]
    assert len(later) == 2
    assert all("Renamed" in m.html_body for m in later)
