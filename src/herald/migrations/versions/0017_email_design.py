"""The email design set in the admin: branding, uploaded logos and custom layouts.

* ``email_design``: one row (``singleton``), the branding the admin set over the
  configured defaults (``HERALD_NEWSLETTER__*``): a NULL ``name``, ``accent`` or
  ``footer_address`` means "the configured default"; ``logo_set`` false means the
  configured ``HERALD_NEWSLETTER__LOGO_URL``, true means ``logo_sha256`` (NULL: no logo).
  ``layout_id`` is the layout every email uses (NULL: the built-in one, which stays in the
  package). ``version`` goes up by one on every change of the design or of a stored
  layout: processes cache the design and re-read it when the version they see moves.
* ``email_logos``: uploaded logos by the SHA-256 of their bytes, never overwritten nor
  deleted by Herald, so an email already in an inbox keeps its logo after a new upload.
  ``data`` is stored uncompressed out of line (PNG, JPEG and GIF are compressed already).
* ``email_layouts``: layouts the editors copied and edited (MJML, validated by the code
  before it is saved).

New tables only: the previous release never reads them (an expand step with nothing to
contract later).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE email_logos (
            sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            content_type text NOT NULL
                CHECK (content_type IN ('image/png', 'image/jpeg', 'image/gif')),
            data bytea NOT NULL,
            width integer NOT NULL CHECK (width > 0),
            height integer NOT NULL CHECK (height > 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by uuid REFERENCES users (id) ON DELETE SET NULL
        );
        ALTER TABLE email_logos ALTER COLUMN data SET STORAGE EXTERNAL;
        CREATE TABLE email_layouts (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            source text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by uuid REFERENCES users (id) ON DELETE SET NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by uuid REFERENCES users (id) ON DELETE SET NULL
        );
        CREATE TABLE email_design (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            name text CHECK (length(name) BETWEEN 1 AND 100),
            accent text CHECK (accent ~ '^#[0-9a-f]{6}$'),
            footer_address text CHECK (length(footer_address) <= 300),
            logo_set boolean NOT NULL DEFAULT false,
            logo_sha256 text REFERENCES email_logos (sha256),
            layout_id uuid REFERENCES email_layouts (id),
            version bigint NOT NULL DEFAULT 1,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by uuid REFERENCES users (id) ON DELETE SET NULL,
            CHECK (logo_set OR logo_sha256 IS NULL)
        );
        INSERT INTO email_design DEFAULT VALUES;
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT + "DROP TABLE email_design; DROP TABLE email_layouts; DROP TABLE email_logos;"
    )
