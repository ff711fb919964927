"""Welcome emails per list (the deliverability issue): ``list_welcomes``, ``list_welcomes_sent``.

* ``list_welcomes``: a list's welcome email, at most one per list — ``enabled``, a
  one-line ``subject`` and a Markdown ``body`` (a Jinja template, personalised like an
  issue's), who changed it last and when. Deleting the list deletes it.
* ``list_welcomes_sent``: one row per reader and list that was welcomed — the
  once-per-reader-and-list guarantee. The welcome is queued in the transaction that
  confirms the membership, which inserts this row ``ON CONFLICT DO NOTHING`` and queues
  an email only for the rows it inserted: confirming twice, a replayed link, two racing
  confirmations, leaving and joining again all send at most one. Both foreign keys
  cascade (an erased reader or a deleted list takes its rows along); the primary key
  serves the reader's side, ``list_welcomes_sent_list`` the list's.

**The welcome email itself is a ``deliveries`` row of kind ``welcome`` that carries the
message rendered at confirmation time in ``deliveries.message``** — exactly the shape of a
confirmation email. That is what makes it safe while the previous release still runs:
its workers claim every row, and a row of a kind they do not know goes to their stored-
message renderer (``renderers.get(kind, render_stored_batch)``, in every release since
b7da948), which sends ``deliveries.message`` as it is (``EmailMessage.from_json``: the
same six keys, extra keys ignored). So an old worker sends the welcome unchanged, never
garbage and never a "has no message" failure; rendering it at send time instead would have
made old workers fail it permanently. The previous release's web processes know nothing of
welcomes: a confirmation they handle during the deploy queues none (and, since a welcome
goes only with the transaction that confirms, none later either).

New tables only: nothing for the previous release to notice. Nothing to contract.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE list_welcomes (
            list_id uuid PRIMARY KEY REFERENCES lists (id) ON DELETE CASCADE,
            enabled boolean NOT NULL DEFAULT false,
            subject text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
            body text NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by uuid REFERENCES users (id) ON DELETE SET NULL
        );
        CREATE TABLE list_welcomes_sent (
            subscriber_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
            list_id uuid NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
            sent_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (subscriber_id, list_id)
        );
        -- Deleting a list: its rows, without a scan.
        CREATE INDEX list_welcomes_sent_list ON list_welcomes_sent (list_id);
        """
    )


def downgrade() -> None:
    run_sql(LOCK_TIMEOUT + "DROP TABLE list_welcomes_sent; DROP TABLE list_welcomes;")
