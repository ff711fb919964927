"""Opt-in engagement tracking (the deliverability issue): opens and clicks of an issue.

* ``issue_tracking``: one row per issue whose editor turned tracking on (no row: off, every
  issue of the previous release). ``links`` is NULL until the issue is published; publishing
  stores the issue's distinct link targets there, in order, and the row no longer changes.
  A click URL carries an index into that list, never a target: the redirect's destination
  always comes from this row (no open redirect). Deleting an issue deletes its row.
* ``engagement_opens``: one row per delivery and kind of open (``machine``: a mail client's
  privacy proxy or a scanner fetched the pixel, by the heuristics of
  ``engagement/domain.py``); inserted with ``ON CONFLICT DO NOTHING``, so a count of rows is
  the unique opens. The primary key leads with the issue: an issue's counts read its range.
* ``engagement_clicks``: one row per delivery, link and kind of click, ``clicks`` counting
  every hit (``ON CONFLICT DO UPDATE``): unique clicks per link are rows, total clicks the
  sum. No foreign keys on either (like ``deliveries``: the hot insert checks and locks
  nothing else); an issue with deliveries cannot be deleted anyway, and a reader's erasure
  nulls ``deliveries.subscriber_id``, which leaves these rows anonymous.
* ``tracking_opt_outs``: readers who turned tracking off in the preference centre; their
  copies carry no pixel and plain links. Erasing the reader deletes the row.

New tables only: the previous release never reads or writes them, and its issues and
readers are simply untracked. Nothing to contract.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE issue_tracking (
            issue_id uuid PRIMARY KEY REFERENCES newsletter_issues (id) ON DELETE CASCADE,
            links text[] CHECK (links IS NULL OR cardinality(links) <= 500),
            created_at timestamptz NOT NULL DEFAULT now(),
            frozen_at timestamptz
        );
        CREATE TABLE engagement_opens (
            issue_id uuid NOT NULL,
            delivery_id bigint NOT NULL,
            machine boolean NOT NULL,
            opened_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (issue_id, delivery_id, machine)
        );
        CREATE TABLE engagement_clicks (
            issue_id uuid NOT NULL,
            link smallint NOT NULL CHECK (link >= 0),
            delivery_id bigint NOT NULL,
            machine boolean NOT NULL,
            clicks bigint NOT NULL DEFAULT 1,
            first_at timestamptz NOT NULL DEFAULT now(),
            last_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (issue_id, link, delivery_id, machine)
        );
        CREATE TABLE tracking_opt_outs (
            subscriber_id uuid PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TABLE tracking_opt_outs;
        DROP TABLE engagement_clicks;
        DROP TABLE engagement_opens;
        DROP TABLE issue_tracking;
        """
    )
