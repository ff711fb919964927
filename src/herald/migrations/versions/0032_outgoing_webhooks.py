"""Outgoing webhooks (the deliverability issue): endpoints, their outbox, their attempts,
and the triggers that fill the outbox.

* ``webhook_endpoints``: a receiver's URL, description, the event types it wants, its
  Standard Webhooks secret (``whsec_<base64>``; kept in clear, as every signer must),
  ``enabled``, and its run of failures (``failing_since``, ``consecutive_failures``)
  from which the sender disables it (``disabled_at``, ``disabled_reason``).
* ``webhook_messages``: the outbox, one row per event per endpoint that wants it; the
  payload is the JSON body sent (``{"type", "timestamp", "data"}``), ``webhook_id`` the
  Standard Webhooks ``webhook-id`` (the same for every attempt of a message). A message
  is claimable when ``pending`` and ``available_at <= now()``; a claim moves
  ``available_at`` to the lease's end and sets a fresh ``lease_token`` that fences every
  later write, as ``deliveries`` does (a killed worker's message comes back after the
  lease).
* ``webhook_attempts``: each attempt's HTTP status or error and a bounded excerpt of the
  response (at most 500 characters), for the endpoint's failure view.

Why triggers, not calls from the services: the events happen on many paths (the public
form, the API, imports, bulk jobs, the admin, the preference centre, the suppression
list's trigger, the worker, the deliverability recorder) and during a deploy on the
previous release's code, which knows nothing of webhooks. Statement-level triggers with
transition tables on ``subscriptions`` (created, confirmed, unsubscribed, erased),
``newsletter_issues`` (published, sent), ``deliveries`` (failed) and ``email_events``
(bounced, complained) see every one of them, in the transaction of the change (so an
event is in the outbox exactly when the change committed). Each first checks in the tiny
``webhook_endpoints`` table whether an enabled endpoint wants any of its types and
returns at once otherwise: with no endpoint a statement pays one index-less probe of an
empty table. ``deliveries`` gets an ``UPDATE`` trigger only: the fan-out's inserts never
produce an event.

Payloads carry no secret; the subscriber's address only where the receiver needs it
(created, confirmed, unsubscribed, bounced, complained, failed) and never for an erased
reader (``subscriber.erased``: the id alone).

The previous release is unaffected: it never reads these tables, and its writes to the
four tables only gain rows in ``webhook_messages`` when an endpoint exists (the triggers
write nothing that can fail: no constraint of the outbox can refuse their rows). New
tables, functions and triggers: nothing to contract.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE webhook_endpoints (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
            description text NOT NULL DEFAULT '' CHECK (length(description) <= 300),
            event_types text[] NOT NULL CHECK (
                cardinality(event_types) BETWEEN 1 AND 20
                AND event_types <@ ARRAY[
                    'subscriber.created', 'subscriber.confirmed', 'subscriber.unsubscribed',
                    'subscriber.erased', 'issue.published', 'issue.sent',
                    'delivery.failed', 'delivery.bounced', 'delivery.complained'
                ]::text[]
            ),
            secret text NOT NULL CHECK (left(secret, 6) = 'whsec_'),
            enabled boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            failing_since timestamptz,
            consecutive_failures integer NOT NULL DEFAULT 0,
            disabled_at timestamptz,
            disabled_reason text
        );

        CREATE TABLE webhook_messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            event_type text NOT NULL,
            webhook_id text NOT NULL
                DEFAULT 'msg_' || replace(gen_random_uuid()::text, '-', ''),
            payload jsonb NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'failed')),
            attempts integer NOT NULL DEFAULT 0,
            available_at timestamptz NOT NULL DEFAULT now(),
            lease_token uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            last_status integer,
            last_error text
        );
        -- The sender's claim.
        CREATE INDEX webhook_messages_due ON webhook_messages (available_at)
            WHERE status = 'pending';
        -- An endpoint's recent messages (and the foreign key's cascade); of one status, and
        -- the endpoint's counts by status (its failure view).
        CREATE INDEX webhook_messages_endpoint ON webhook_messages (endpoint_id, id);
        CREATE INDEX webhook_messages_endpoint_status
            ON webhook_messages (endpoint_id, status, id);
        -- Housekeeping: finished messages by age.
        CREATE INDEX webhook_messages_finished ON webhook_messages (finished_at)
            WHERE status <> 'pending';

        CREATE TABLE webhook_attempts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            message_id bigint NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
            endpoint_id uuid NOT NULL,
            attempted_at timestamptz NOT NULL DEFAULT now(),
            duration_ms integer NOT NULL DEFAULT 0,
            status_code integer,
            error text NOT NULL DEFAULT '' CHECK (length(error) <= 300),
            response_excerpt text NOT NULL DEFAULT '' CHECK (length(response_excerpt) <= 500)
        );
        CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, id);
        CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);

        -- An ISO 8601 UTC time, whatever the session's time zone.
        CREATE FUNCTION herald_webhook_time(t timestamptz) RETURNS text
        LANGUAGE sql STABLE AS $$
            SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        $$;

        -- Whether an enabled endpoint wants any of these event types.
        CREATE FUNCTION herald_webhooks_wanted(types text[]) RETURNS boolean
        LANGUAGE sql STABLE AS $$
            SELECT EXISTS (
                SELECT 1 FROM webhook_endpoints WHERE enabled AND event_types && types
            )
        $$;

        CREATE FUNCTION herald_webhooks_subscriptions() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT herald_webhooks_wanted(ARRAY[
                'subscriber.created', 'subscriber.confirmed', 'subscriber.unsubscribed',
                'subscriber.erased'
            ]) THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'INSERT' THEN
                INSERT INTO webhook_messages (endpoint_id, event_type, payload)
                SELECT e.id, ev.type, jsonb_build_object(
                    'type', ev.type, 'timestamp', herald_webhook_time(now()), 'data', ev.data)
                FROM (
                    SELECT n.created_at AS at, n.id AS sid, 1 AS step,
                           'subscriber.created' AS type,
                           jsonb_build_object(
                               'id', n.id, 'email', n.email, 'name', n.name,
                               'status', n.status, 'resubscribed', false,
                               'created_at', herald_webhook_time(n.created_at)) AS data
                    FROM new_rows n
                    UNION ALL
                    SELECT n.created_at, n.id, 2, 'subscriber.confirmed',
                           jsonb_build_object(
                               'id', n.id, 'email', n.email, 'name', n.name,
                               'confirmed_at', herald_webhook_time(
                                   coalesce(n.confirmed_at, now())))
                    FROM new_rows n WHERE n.status = 'confirmed'
                ) ev
                JOIN webhook_endpoints e ON e.enabled AND ev.type = ANY (e.event_types)
                ORDER BY ev.at, ev.sid, ev.step, e.id;
            ELSIF TG_OP = 'UPDATE' THEN
                INSERT INTO webhook_messages (endpoint_id, event_type, payload)
                SELECT e.id, ev.type, jsonb_build_object(
                    'type', ev.type, 'timestamp', herald_webhook_time(now()), 'data', ev.data)
                FROM (
                    SELECT n.id AS sid,
                           CASE n.status
                               WHEN 'confirmed' THEN 'subscriber.confirmed'
                               WHEN 'unsubscribed' THEN 'subscriber.unsubscribed'
                               ELSE 'subscriber.created'
                           END AS type,
                           CASE n.status
                               WHEN 'confirmed' THEN jsonb_build_object(
                                   'id', n.id, 'email', n.email, 'name', n.name,
                                   'confirmed_at', herald_webhook_time(
                                       coalesce(n.confirmed_at, now())))
                               WHEN 'unsubscribed' THEN jsonb_build_object(
                                   'id', n.id, 'email', n.email,
                                   'unsubscribed_at', herald_webhook_time(
                                       coalesce(n.unsubscribed_at, now())))
                               ELSE jsonb_build_object(
                                   'id', n.id, 'email', n.email, 'name', n.name,
                                   'status', n.status, 'resubscribed', true,
                                   'created_at', herald_webhook_time(n.created_at))
                           END AS data
                    FROM new_rows n JOIN old_rows o ON o.id = n.id
                    WHERE n.status IS DISTINCT FROM o.status
                      AND (n.status IN ('confirmed', 'unsubscribed')
                           OR (n.status = 'pending_confirmation'
                               AND o.status = 'unsubscribed'))
                ) ev
                JOIN webhook_endpoints e ON e.enabled AND ev.type = ANY (e.event_types)
                ORDER BY ev.sid, e.id;
            ELSE
                INSERT INTO webhook_messages (endpoint_id, event_type, payload)
                SELECT e.id, 'subscriber.erased', jsonb_build_object(
                    'type', 'subscriber.erased', 'timestamp', herald_webhook_time(now()),
                    'data', jsonb_build_object('id', o.id))
                FROM old_rows o
                JOIN webhook_endpoints e
                    ON e.enabled AND 'subscriber.erased' = ANY (e.event_types)
                ORDER BY o.id, e.id;
            END IF;
            RETURN NULL;
        END
        $$;

        CREATE FUNCTION herald_webhook_issue_payload(
            type text, id uuid, title text, published_at timestamptz,
            completed_at timestamptz, recipients integer
        ) RETURNS jsonb LANGUAGE sql STABLE AS $$
            SELECT jsonb_build_object(
                'type', type, 'timestamp', herald_webhook_time(now()),
                'data', jsonb_build_object(
                    'id', id, 'title', title,
                    'published_at', herald_webhook_time(published_at),
                    'completed_at', herald_webhook_time(completed_at),
                    'recipients', recipients))
        $$;

        CREATE FUNCTION herald_webhooks_issues() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT herald_webhooks_wanted(ARRAY['issue.published', 'issue.sent']) THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'INSERT' THEN
                INSERT INTO webhook_messages (endpoint_id, event_type, payload)
                SELECT e.id, ev.type, herald_webhook_issue_payload(
                    ev.type, ev.id, ev.title, ev.published_at, ev.completed_at, ev.recipients)
                FROM (
                    SELECT n.id, n.title, n.published_at, n.completed_at, n.recipients,
                           CASE n.status WHEN 'sent' THEN 'issue.sent'
                               ELSE 'issue.published' END AS type
                    FROM new_rows n WHERE n.status IN ('publishing', 'sent')
                ) ev
                JOIN webhook_endpoints e ON e.enabled AND ev.type = ANY (e.event_types)
                ORDER BY ev.id, e.id;
            ELSE
                INSERT INTO webhook_messages (endpoint_id, event_type, payload)
                SELECT e.id, ev.type, herald_webhook_issue_payload(
                    ev.type, ev.id, ev.title, ev.published_at, ev.completed_at, ev.recipients)
                FROM (
                    SELECT n.id, n.title, n.published_at, n.completed_at, n.recipients,
                           CASE n.status WHEN 'sent' THEN 'issue.sent'
                               ELSE 'issue.published' END AS type
                    FROM new_rows n JOIN old_rows o ON o.id = n.id
                    WHERE (n.status = 'publishing' AND o.status IN ('draft', 'scheduled'))
                       OR (n.status = 'sent' AND o.status <> 'sent')
                ) ev
                JOIN webhook_endpoints e ON e.enabled AND ev.type = ANY (e.event_types)
                ORDER BY ev.id, e.id;
            END IF;
            RETURN NULL;
        END
        $$;

        CREATE FUNCTION herald_webhooks_deliveries() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT herald_webhooks_wanted(ARRAY['delivery.failed']) THEN
                RETURN NULL;
            END IF;
            INSERT INTO webhook_messages (endpoint_id, event_type, payload)
            SELECT e.id, 'delivery.failed', jsonb_build_object(
                'type', 'delivery.failed', 'timestamp', herald_webhook_time(now()),
                'data', jsonb_build_object(
                    'delivery_id', n.id, 'kind', n.kind, 'issue_id', n.issue_id,
                    'subscriber_id', n.subscriber_id,
                    'email', CASE WHEN n.recipient = '(erased)' THEN NULL
                                  ELSE n.recipient END,
                    'attempts', n.attempts, 'error', left(n.last_error, 300)))
            FROM new_rows n
            JOIN old_rows o ON o.id = n.id AND o.status <> 'failed'
            JOIN webhook_endpoints e ON e.enabled AND 'delivery.failed' = ANY (e.event_types)
            WHERE n.status = 'failed'
            ORDER BY n.id, e.id;
            RETURN NULL;
        END
        $$;

        CREATE FUNCTION herald_webhooks_email_events() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT herald_webhooks_wanted(ARRAY['delivery.bounced', 'delivery.complained'])
            THEN
                RETURN NULL;
            END IF;
            INSERT INTO webhook_messages (endpoint_id, event_type, payload)
            SELECT e.id, ev.type, jsonb_build_object(
                'type', ev.type, 'timestamp', herald_webhook_time(now()), 'data', ev.data)
            FROM (
                SELECT n.id AS eid,
                       CASE WHEN n.kind = 'complaint' THEN 'delivery.complained'
                           ELSE 'delivery.bounced' END AS type,
                       jsonb_build_object(
                           'delivery_id', n.delivery_id, 'issue_id', n.issue_id,
                           'subscriber_id', n.subscriber_id, 'email', s.email,
                           'provider', n.provider, 'kind', n.kind,
                           'bounce', CASE n.kind WHEN 'hard_bounce' THEN 'hard'
                                         WHEN 'soft_bounce' THEN 'soft' END,
                           'detail', left(n.detail, 300), 'suppressed', n.suppressed,
                           'occurred_at', herald_webhook_time(n.occurred_at)) AS data
                FROM new_rows n
                LEFT JOIN subscriptions s ON s.id = n.subscriber_id
                WHERE n.kind IN ('hard_bounce', 'soft_bounce', 'complaint')
            ) ev
            JOIN webhook_endpoints e ON e.enabled AND ev.type = ANY (e.event_types)
            ORDER BY ev.eid, e.id;
            RETURN NULL;
        END
        $$;

        CREATE TRIGGER subscriptions_webhooks_inserts AFTER INSERT ON subscriptions
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_webhooks_subscriptions();
        CREATE TRIGGER subscriptions_webhooks_updates AFTER UPDATE ON subscriptions
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_webhooks_subscriptions();
        CREATE TRIGGER subscriptions_webhooks_deletes AFTER DELETE ON subscriptions
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_webhooks_subscriptions();
        CREATE TRIGGER newsletter_issues_webhooks_inserts AFTER INSERT ON newsletter_issues
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_webhooks_issues();
        CREATE TRIGGER newsletter_issues_webhooks_updates AFTER UPDATE ON newsletter_issues
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_webhooks_issues();
        CREATE TRIGGER deliveries_webhooks_updates AFTER UPDATE ON deliveries
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_webhooks_deliveries();
        CREATE TRIGGER email_events_webhooks_inserts AFTER INSERT ON email_events
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_webhooks_email_events();
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TRIGGER email_events_webhooks_inserts ON email_events;
        DROP TRIGGER deliveries_webhooks_updates ON deliveries;
        DROP TRIGGER newsletter_issues_webhooks_updates ON newsletter_issues;
        DROP TRIGGER newsletter_issues_webhooks_inserts ON newsletter_issues;
        DROP TRIGGER subscriptions_webhooks_deletes ON subscriptions;
        DROP TRIGGER subscriptions_webhooks_updates ON subscriptions;
        DROP TRIGGER subscriptions_webhooks_inserts ON subscriptions;
        DROP FUNCTION herald_webhooks_email_events();
        DROP FUNCTION herald_webhooks_deliveries();
        DROP FUNCTION herald_webhooks_issues();
        DROP FUNCTION herald_webhook_issue_payload(
            text, uuid, text, timestamptz, timestamptz, integer
        );
        DROP FUNCTION herald_webhooks_subscriptions();
        DROP FUNCTION herald_webhooks_wanted(text[]);
        DROP FUNCTION herald_webhook_time(timestamptz);
        DROP TABLE webhook_attempts;
        DROP TABLE webhook_messages;
        DROP TABLE webhook_endpoints;
        """
    )
