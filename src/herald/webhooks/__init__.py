"""Outgoing webhooks (the deliverability issue, item 5; migration 0032).

Admins register endpoints (``/admin/webhooks``, ``/api/v1/webhooks``) with the event
types they want. Migration 0032's statement-level triggers on ``subscriptions``,
``newsletter_issues``, ``deliveries`` and ``email_events`` write one outbox row
(``webhook_messages``) per event per endpoint that wants it, in the transaction of the
change, whichever code made it. :mod:`herald.webhooks.sender` delivers them from the
worker processes, signed per the Standard Webhooks specification, with retries and
backoff; an endpoint that keeps failing is disabled with a notice.
"""
