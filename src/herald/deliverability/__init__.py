"""Deliverability: what happens to a message after Herald sent it.

Every adapter — Postmark's webhooks, Amazon SES through SNS, an SMTP server's refusal or
a bounce message — turns what it heard into :class:`~herald.deliverability.domain.ProviderEvent`
values in one vocabulary (:class:`~herald.deliverability.domain.EventKind`), and one
recorder stores them (``email_events``, migration 0027: deduplicated by the provider's
event id) and applies the one policy: a hard bounce or a complaint suppresses the address
at once, soft bounces after N within a window, a block never suppresses the reader (it is
the sender's reputation) but raises an alert metric.
"""
