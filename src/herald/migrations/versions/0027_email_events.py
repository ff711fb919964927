"""What happens to a message after it was sent: ``email_events`` (the deliverability issue).

One row per provider event — delivered, deferred, hard or soft bounce, blocked, complaint,
the provider's own unsubscribe or suppression — whatever adapter heard it (Postmark's
webhooks, Amazon SES through SNS, an SMTP server's refusal or a bounce message). Providers
send an event more than once (retries, replays): ``(provider, provider_event_id)`` is
unique and the recorder inserts with ``ON CONFLICT DO NOTHING``, so a replay stores
nothing and changes nothing.

* ``delivery_id``: the ``deliveries`` row the event is about when it was found (Herald's
  delivery id in the message's metadata, else the provider's message id); no foreign key,
  so the queue's writes never check or lock this table.
* ``subscriber_id``: the reader, set to NULL when the subscription is erased (the foreign
  key's ``ON DELETE SET NULL``); ``address_key`` (``herald_address_key(email)``, the
  suppression list's key) stays, so the soft-bounce policy still counts an address it no
  longer knows by name, and no event keeps an address in clear.
* ``detail``: the provider's short description (bounce type, diagnostic), bounded.
* ``suppressed``: whether the policy put the address on the suppression list because of
  this event.

A new table: nothing for the previous release to notice. Nothing to contract.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE email_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            provider text NOT NULL CHECK (provider IN ('postmark', 'ses', 'smtp')),
            provider_event_id text NOT NULL
                CHECK (length(provider_event_id) BETWEEN 1 AND 200),
            kind text NOT NULL CHECK (kind IN (
                'delivered', 'deferred', 'hard_bounce', 'soft_bounce', 'blocked',
                'complaint', 'provider_unsubscribe', 'provider_suppression'
            )),
            delivery_id bigint,
            issue_id uuid,
            subscriber_id uuid REFERENCES subscriptions (id) ON DELETE SET NULL,
            address_key bytea,
            occurred_at timestamptz NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            detail text NOT NULL DEFAULT '' CHECK (length(detail) <= 1000),
            suppressed boolean NOT NULL DEFAULT false,
            CONSTRAINT email_events_provider_event UNIQUE (provider, provider_event_id)
        );
        -- A reader's timeline (and the foreign key's ON DELETE SET NULL).
        CREATE INDEX email_events_subscriber ON email_events (subscriber_id, occurred_at)
            WHERE subscriber_id IS NOT NULL;
        -- An issue's results: its events by kind.
        CREATE INDEX email_events_issue ON email_events (issue_id, kind)
            WHERE issue_id IS NOT NULL;
        -- The soft-bounce policy: an address's soft bounces within a window.
        CREATE INDEX email_events_soft_bounces ON email_events (address_key, occurred_at)
            WHERE kind = 'soft_bounce';
        """
    )


def downgrade() -> None:
    run_sql(LOCK_TIMEOUT + "DROP TABLE email_events;")
