"""Cheaper issue fan-out: no per-row foreign-key checks, one index fewer.

Publishing inserts one ``deliveries`` row per confirmed subscriber in one statement.
Measured on 200,000 subscribers (``bench/million.py``, BENCHMARKS.md P2), that insert
spent about a third of its time in the two foreign-key checks each row triggers
(``subscriber_id`` and ``issue_id``: one SPI query and one row lock per row) and most
of the rest maintaining five indexes. This migration keeps every guarantee those gave:

* ``deliveries.subscriber_id`` keeps its ``ON DELETE SET NULL``, now done by a
  statement-level trigger on ``subscriptions`` (one UPDATE per DELETE statement).
  Rows are only ever inserted with a subscriber id read in the same transaction (the
  fan-out selects it, a confirmation email is queued with the row it just wrote); a
  subscriber deleted concurrently leaves an id that matches nobody, which the sender
  already treats as "the subscriber no longer exists" and records as suppressed.
* ``deliveries.issue_id``: issues are never deleted by Herald; a trigger still refuses
  to delete an issue that has deliveries, as the foreign key's NO ACTION did.
* ``deliveries_subscriber (subscriber_id, created_at)`` and the partial unique
  ``deliveries_issue_subscriber (issue_id, subscriber_id)`` become one unique index on
  ``(subscriber_id, issue_id)``: it still makes a second delivery of one issue to one
  subscriber impossible (NULL issue ids, i.e. confirmation emails, never collide) and
  serves a subscriber's delivery history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE deliveries DROP CONSTRAINT deliveries_subscriber_id_fkey;
        ALTER TABLE deliveries DROP CONSTRAINT deliveries_issue_id_fkey;

        CREATE FUNCTION herald_forget_deleted_subscribers() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE deliveries AS d SET subscriber_id = NULL
            FROM deleted AS s
            WHERE d.subscriber_id = s.id;
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER subscriptions_forget_deliveries AFTER DELETE ON subscriptions
            REFERENCING OLD TABLE AS deleted
            FOR EACH STATEMENT EXECUTE FUNCTION herald_forget_deleted_subscribers();

        CREATE FUNCTION herald_keep_issues_with_deliveries() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM deliveries WHERE issue_id = OLD.id) THEN
                RAISE EXCEPTION 'issue % still has deliveries', OLD.id
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN OLD;
        END
        $$;
        CREATE TRIGGER newsletter_issues_keep_deliveries BEFORE DELETE ON newsletter_issues
            FOR EACH ROW EXECUTE FUNCTION herald_keep_issues_with_deliveries();

        CREATE UNIQUE INDEX deliveries_subscriber_issue ON deliveries (subscriber_id, issue_id);
        DROP INDEX deliveries_subscriber;
        DROP INDEX deliveries_issue_subscriber;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id, created_at);
        CREATE UNIQUE INDEX deliveries_issue_subscriber ON deliveries (issue_id, subscriber_id)
            WHERE issue_id IS NOT NULL;
        DROP INDEX deliveries_subscriber_issue;

        DROP TRIGGER newsletter_issues_keep_deliveries ON newsletter_issues;
        DROP FUNCTION herald_keep_issues_with_deliveries();
        DROP TRIGGER subscriptions_forget_deliveries ON subscriptions;
        DROP FUNCTION herald_forget_deleted_subscribers();

        UPDATE deliveries AS d SET subscriber_id = NULL
        WHERE d.subscriber_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM subscriptions AS s WHERE s.id = d.subscriber_id);
        ALTER TABLE deliveries ADD CONSTRAINT deliveries_issue_id_fkey
            FOREIGN KEY (issue_id) REFERENCES newsletter_issues (id);
        ALTER TABLE deliveries ADD CONSTRAINT deliveries_subscriber_id_fkey
            FOREIGN KEY (subscriber_id) REFERENCES subscriptions (id) ON DELETE SET NULL;
        """
    )
