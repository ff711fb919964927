"""The default-list mirror follows the previous release's re-subscription too.

Migration 0018's trigger (``herald_mirror_default_list``) keeps the previous release's
readers in the default list: an insert joins it, a confirmation confirms, an
unsubscription unsubscribes. One move was missing: the previous release signs up again
an address that left everything by setting it back to ``pending_confirmation`` (and then
``confirmed`` by the link), and the default membership stayed ``unsubscribed``, so this
release, which mails a list's confirmed members, would never mail that reader again
although the previous release does. Now a change from ``unsubscribed`` to
``pending_confirmation`` puts the default membership back to pending — unless the
subscriber has any membership that is not unsubscribed: this release writes the lists a
reader chose (pending or confirmed) before it changes the address's status, so its own
re-subscriptions keep exactly the lists chosen
(``tests/integration/test_default_list_mirror.py``).

``CREATE OR REPLACE`` with the same signature, behaviour otherwise unchanged: nothing for
release N-1 to notice. Contract: with 0018's, once no release that writes only
``subscriptions`` runs.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE OR REPLACE FUNCTION herald_mirror_default_list() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO list_memberships AS m (
                    list_id, subscriber_id, status, source,
                    created_at, confirmed_at, unsubscribed_at
                )
                SELECT l.id, n.id, n.status, 'subscribe',
                       n.created_at, n.confirmed_at, n.unsubscribed_at
                FROM new_rows AS n
                JOIN lists AS l ON l.slug = 'default'
                WHERE NOT EXISTS (
                    SELECT 1 FROM list_memberships AS e WHERE e.subscriber_id = n.id
                )
                ON CONFLICT (list_id, subscriber_id) DO NOTHING;
                RETURN NULL;
            END IF;

            UPDATE list_memberships AS m
            SET status = 'confirmed', confirmed_at = coalesce(n.confirmed_at, now()),
                updated_at = now()
            FROM new_rows AS n
            JOIN old_rows AS o ON o.id = n.id
            WHERE m.subscriber_id = n.id
              AND n.status = 'confirmed' AND o.status <> 'confirmed'
              AND m.status = 'pending_confirmation';

            UPDATE list_memberships AS m
            SET status = 'unsubscribed', unsubscribed_at = coalesce(n.unsubscribed_at, now()),
                updated_at = now()
            FROM new_rows AS n
            JOIN old_rows AS o ON o.id = n.id
            WHERE m.subscriber_id = n.id
              AND n.status = 'unsubscribed' AND o.status <> 'unsubscribed'
              AND m.status <> 'unsubscribed';

            -- Back from "unsubscribed" to pending (the previous release's sign-up of an
            -- address that left everything): its default-list membership waits for the
            -- confirmation again (and the confirmation confirms it). Not when the
            -- statement's code chose lists itself: this release writes the memberships
            -- it wants (pending or confirmed) before it changes the status.
            UPDATE list_memberships AS m
            SET status = 'pending_confirmation', unsubscribed_at = NULL, updated_at = now()
            FROM new_rows AS n
            JOIN old_rows AS o ON o.id = n.id
            JOIN lists AS l ON l.slug = 'default'
            WHERE m.subscriber_id = n.id AND m.list_id = l.id
              AND o.status = 'unsubscribed' AND n.status = 'pending_confirmation'
              AND m.status = 'unsubscribed'
              AND NOT EXISTS (
                  SELECT 1 FROM list_memberships AS e
                  WHERE e.subscriber_id = n.id AND e.status <> 'unsubscribed'
              );

            INSERT INTO list_memberships AS m (
                list_id, subscriber_id, status, source,
                created_at, confirmed_at, unsubscribed_at
            )
            SELECT l.id, n.id, n.status, 'subscribe',
                   n.created_at, n.confirmed_at, n.unsubscribed_at
            FROM new_rows AS n
            JOIN old_rows AS o ON o.id = n.id
            JOIN lists AS l ON l.slug = 'default'
            WHERE n.status <> o.status
              AND NOT EXISTS (SELECT 1 FROM list_memberships AS e WHERE e.subscriber_id = n.id)
            ON CONFLICT (list_id, subscriber_id) DO UPDATE
            SET status = EXCLUDED.status, confirmed_at = EXCLUDED.confirmed_at,
                unsubscribed_at = EXCLUDED.unsubscribed_at, updated_at = now();
            RETURN NULL;
        END
        $$;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE OR REPLACE FUNCTION herald_mirror_default_list() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO list_memberships AS m (
                    list_id, subscriber_id, status, source,
                    created_at, confirmed_at, unsubscribed_at
                )
                SELECT l.id, n.id, n.status, 'subscribe',
                       n.created_at, n.confirmed_at, n.unsubscribed_at
                FROM new_rows AS n
                JOIN lists AS l ON l.slug = 'default'
                WHERE NOT EXISTS (
                    SELECT 1 FROM list_memberships AS e WHERE e.subscriber_id = n.id
                )
                ON CONFLICT (list_id, subscriber_id) DO NOTHING;
                RETURN NULL;
            END IF;

            UPDATE list_memberships AS m
            SET status = 'confirmed', confirmed_at = coalesce(n.confirmed_at, now()),
                updated_at = now()
            FROM new_rows AS n
            JOIN old_rows AS o ON o.id = n.id
            WHERE m.subscriber_id = n.id
              AND n.status = 'confirmed' AND o.status <> 'confirmed'
              AND m.status = 'pending_confirmation';

            UPDATE list_memberships AS m
            SET status = 'unsubscribed', unsubscribed_at = coalesce(n.unsubscribed_at, now()),
                updated_at = now()
            FROM new_rows AS n
            JOIN old_rows AS o ON o.id = n.id
            WHERE m.subscriber_id = n.id
              AND n.status = 'unsubscribed' AND o.status <> 'unsubscribed'
              AND m.status <> 'unsubscribed';

            INSERT INTO list_memberships AS m (
                list_id, subscriber_id, status, source,
                created_at, confirmed_at, unsubscribed_at
            )
            SELECT l.id, n.id, n.status, 'subscribe',
                   n.created_at, n.confirmed_at, n.unsubscribed_at
            FROM new_rows AS n
            JOIN old_rows AS o ON o.id = n.id
            JOIN lists AS l ON l.slug = 'default'
            WHERE n.status <> o.status
              AND NOT EXISTS (SELECT 1 FROM list_memberships AS e WHERE e.subscriber_id = n.id)
            ON CONFLICT (list_id, subscriber_id) DO UPDATE
            SET status = EXCLUDED.status, confirmed_at = EXCLUDED.confirmed_at,
                unsubscribed_at = EXCLUDED.unsubscribed_at, updated_at = now();
            RETURN NULL;
        END
        $$;
        """
    )
