"""Subscriptions, confirmation tokens, the delivery queue and the development outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE subscriptions (
            id            uuid PRIMARY KEY,
            email         text NOT NULL,
            name          text NOT NULL,
            status        text NOT NULL
                          CHECK (status IN ('pending_confirmation', 'confirmed', 'unsubscribed')),
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            confirmed_at  timestamptz
        );
        -- One subscription per address, whatever its case.
        CREATE UNIQUE INDEX subscriptions_email_key ON subscriptions (lower(email));
        CREATE INDEX subscriptions_confirmed ON subscriptions (id) WHERE status = 'confirmed';

        -- Only a SHA-256 of each token is stored: a database leak confirms nobody.
        CREATE TABLE subscription_tokens (
            token_hash     bytea PRIMARY KEY,
            subscriber_id  uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
            created_at     timestamptz NOT NULL DEFAULT now(),
            expires_at     timestamptz NOT NULL
        );
        CREATE INDEX subscription_tokens_subscriber ON subscription_tokens (subscriber_id);
        CREATE INDEX subscription_tokens_expires ON subscription_tokens (expires_at);

        -- The delivery queue (transactional outbox) shared by every email Herald sends.
        -- A row is claimable when status is 'queued' or 'sending' and available_at has
        -- passed: for 'sending' rows available_at is the lease expiry, so a crashed
        -- worker's rows come back on their own.
        CREATE TABLE deliveries (
            id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind                 text NOT NULL,
            recipient            text NOT NULL,
            subscriber_id        uuid REFERENCES subscriptions (id) ON DELETE SET NULL,
            message              jsonb,
            status               text NOT NULL DEFAULT 'queued'
                                 CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'suppressed')),
            attempts             integer NOT NULL DEFAULT 0,
            max_attempts         integer NOT NULL CHECK (max_attempts > 0),
            available_at         timestamptz NOT NULL DEFAULT now(),
            lease_token          uuid,
            leased_by            text,
            last_error           text,
            provider_message_id  text,
            created_at           timestamptz NOT NULL DEFAULT now(),
            updated_at           timestamptz NOT NULL DEFAULT now(),
            sent_at              timestamptz
        );
        CREATE INDEX deliveries_due ON deliveries (available_at) WHERE status IN ('queued', 'sending');
        CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id, created_at);

        -- Wake workers when rows arrive: one notification per statement, sent at commit.
        CREATE FUNCTION herald_notify_deliveries() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('herald_deliveries', '');
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
            FOR EACH STATEMENT EXECUTE FUNCTION herald_notify_deliveries();

        -- Messages "sent" by the development outbox provider.
        CREATE TABLE outbox_messages (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            message_id  uuid NOT NULL UNIQUE,
            sender      text NOT NULL,
            recipient   text NOT NULL,
            subject     text NOT NULL,
            html_body   text NOT NULL,
            text_body   text NOT NULL,
            headers     jsonb NOT NULL DEFAULT '[]'::jsonb,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TABLE outbox_messages;
        DROP TRIGGER deliveries_notify ON deliveries;
        DROP FUNCTION herald_notify_deliveries();
        DROP TABLE deliveries;
        DROP TABLE subscription_tokens;
        DROP TABLE subscriptions;
        """
    )
