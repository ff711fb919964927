"""Choose the email provider named by ``HERALD_EMAIL__PROVIDER``."""

from __future__ import annotations

from herald.core.config import ProviderName, Settings
from herald.core.db import Database
from herald.email.message import EmailProvider


def build_provider(settings: Settings, db: Database) -> EmailProvider:
    provider = settings.email.provider
    if provider is ProviderName.OUTBOX:
        from herald.email.outbox import OutboxProvider

        return OutboxProvider(db)
    if provider is ProviderName.POSTMARK:
        from herald.email.postmark import PostmarkProvider

        return PostmarkProvider(settings.email)
    from herald.email.smtp import SmtpProvider
    from herald.email.verp import Verp

    return SmtpProvider(settings.email, Verp.configured(settings))
