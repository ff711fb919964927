"""Audience, expand step: lists and memberships, attributes, segments, suppressions, job files.

* ``lists``: the newsletters of the instance. The row with slug ``default`` is created
  here; every subscription of the previous release belongs to it (contract
  "Audience": ``POST /subscriptions`` subscribes to ``default``).
* ``list_memberships``: one row per subscriber and list, with its own status and its
  consent record (``source``: the form, the import job, the API or the admin that added
  it; the IP address and user agent of a form sign-up; ``confirmed_at``).
* ``subscriptions.status`` keeps the meaning the previous release gives it, seen from
  the address: ``pending_confirmation`` (never confirmed), ``confirmed`` (may be
  mailed), ``unsubscribed`` (from everything). A list member is mailed when both its
  membership and its subscription are ``confirmed``.
* ``subscriptions.attributes``: free-form JSON object per subscriber (a constant default:
  no rewrite; the code checks it is an object and its size).
* ``segments``: saved structured filters (``filter`` is the JSON the code validates and
  compiles to parameterised SQL; never SQL from users).
* ``issue_lists`` and ``newsletter_issues.segment_id``: what an issue targets. An issue
  without ``issue_lists`` rows targets the default list (issues of the previous release).
* ``suppressions``: addresses never to be mailed again, keyed by an HMAC of the
  normalised address (``herald_address_key(email)``, in SQL) so an erased
  address is forgotten while its key still blocks a re-import. ``email`` is kept only
  where the address may be kept (NULL after an erasure). The HMAC key is
  ``instance_keys['suppression']``, 32 random bytes made here (with its RFC 2104 pads,
  so SQL computes the HMAC with two ``sha256`` calls), not derived from
  ``HERALD_SECRET_KEY``: rotating the secret must never let an erased address be mailed.
* ``job_files`` and ``job_errors``: an import's uploaded CSV in chunks (the workers read
  it from Postgres, the only stateful dependency) and its per-row error report.

Compatibility with the previous release, which knows none of this and writes only
``subscriptions`` (``herald_mirror_default_list``, statement-level triggers):

* **INSERT**: a subscription inserted by a statement that wrote no membership for it
  (the previous release's ``POST /subscriptions``) becomes a member of the default list
  with the subscription's status. New code always writes a subscription and its
  memberships in one statement (a data-modifying CTE): AFTER triggers fire at the end of
  the whole statement, so the trigger sees them and adds nothing.
* **UPDATE of status**: a confirmed address confirms its pending memberships (one
  confirmation email confirms every list chosen in the sign-up); an address unsubscribed
  from everything has every membership unsubscribed. These are the new code's own
  rules too, so the trigger stays until a contract step decides otherwise. A
  subscription that has no membership yet (rows from before this migration, not yet
  backfilled) gets its default-list membership by an upsert, which waits for a
  concurrent backfill of the same row and then applies the new status.

Backfill (from code, in batches, never here): the subscriptions that existed before
this migration get their default-list membership from a background job.
Contract (a later release, once the backfill has finished everywhere and no release
that writes subscriptions without memberships runs): drop the INSERT branch of the
trigger.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE lists (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            slug text NOT NULL UNIQUE
                CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 60),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            description text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
            visibility text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'private')),
            opt_in text NOT NULL DEFAULT 'double' CHECK (opt_in IN ('double', 'single')),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO lists (slug, name) VALUES ('default', 'Newsletter');

        CREATE TABLE list_memberships (
            list_id uuid NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
            subscriber_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
            status text NOT NULL
                CHECK (status IN ('pending_confirmation', 'confirmed', 'unsubscribed')),
            source text NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
            consent_ip inet,
            consent_user_agent text CHECK (length(consent_user_agent) <= 500),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            confirmed_at timestamptz,
            unsubscribed_at timestamptz,
            PRIMARY KEY (list_id, subscriber_id)
        );
        CREATE INDEX list_memberships_subscriber ON list_memberships (subscriber_id);
        CREATE INDEX list_memberships_confirmed ON list_memberships (list_id, subscriber_id)
            WHERE status = 'confirmed';

        ALTER TABLE subscriptions ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}';

        CREATE TABLE segments (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
            filter jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by uuid REFERENCES users (id) ON DELETE SET NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE issue_lists (
            issue_id uuid NOT NULL REFERENCES newsletter_issues (id) ON DELETE CASCADE,
            list_id uuid NOT NULL REFERENCES lists (id) ON DELETE RESTRICT,
            PRIMARY KEY (issue_id, list_id)
        );
        CREATE INDEX issue_lists_list ON issue_lists (list_id);
        ALTER TABLE newsletter_issues
            ADD COLUMN segment_id uuid REFERENCES segments (id) ON DELETE RESTRICT;

        CREATE TABLE suppressions (
            address_key bytea PRIMARY KEY CHECK (length(address_key) = 32),
            email text,
            reason text NOT NULL CHECK (reason IN (
                'unsubscribed', 'erased', 'hard_bounce', 'complaint', 'manual', 'provider'
            )),
            source text NOT NULL DEFAULT '' CHECK (length(source) <= 200),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX suppressions_created ON suppressions (created_at, address_key);
        CREATE TABLE instance_keys (
            purpose text PRIMARY KEY,
            key bytea NOT NULL CHECK (length(key) = 32),
            inner_pad bytea NOT NULL CHECK (length(inner_pad) = 64),
            outer_pad bytea NOT NULL CHECK (length(outer_pad) = 64),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        DO $$
        DECLARE
            -- gen_random_uuid() draws from pg_strong_random: two give 244 random bits.
            k bytea := sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8'));
            block bytea := k || decode(repeat('00', 32), 'hex');
            ipad bytea := block;
            opad bytea := block;
        BEGIN
            FOR i IN 0..63 LOOP
                ipad := set_byte(ipad, i, get_byte(block, i) # 54);
                opad := set_byte(opad, i, get_byte(block, i) # 92);
            END LOOP;
            INSERT INTO instance_keys (purpose, key, inner_pad, outer_pad)
            VALUES ('suppression', k, ipad, opad);
        END
        $$;
        -- HMAC-SHA256 (RFC 2104) of the normalised address under the suppression key,
        -- computed in SQL so imports and the fan-out check a million addresses in one
        -- statement. The only definition of an address's suppression key.
        CREATE FUNCTION herald_address_key(email text) RETURNS bytea
        LANGUAGE sql STABLE STRICT PARALLEL SAFE
        SET search_path FROM CURRENT AS $$
            SELECT sha256(k.outer_pad || sha256(k.inner_pad || convert_to(lower(btrim(email)), 'UTF8')))
            FROM instance_keys AS k WHERE k.purpose = 'suppression'
        $$;

        CREATE TABLE job_files (
            job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            seq integer NOT NULL CHECK (seq >= 0),
            data bytea NOT NULL,
            PRIMARY KEY (job_id, seq)
        );
        ALTER TABLE job_files ALTER COLUMN data SET STORAGE EXTERNAL;
        CREATE TABLE job_errors (
            job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            line bigint NOT NULL,
            email text,
            error text NOT NULL,
            PRIMARY KEY (job_id, line)
        );

        CREATE FUNCTION herald_mirror_default_list() RETURNS trigger
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

        CREATE TRIGGER subscriptions_mirror_inserts AFTER INSERT ON subscriptions
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_mirror_default_list();
        CREATE TRIGGER subscriptions_mirror_updates AFTER UPDATE ON subscriptions
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION herald_mirror_default_list();
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TRIGGER subscriptions_mirror_updates ON subscriptions;
        DROP TRIGGER subscriptions_mirror_inserts ON subscriptions;
        DROP FUNCTION herald_mirror_default_list();
        DROP TABLE job_errors;
        DROP TABLE job_files;
        DROP FUNCTION herald_address_key(text);
        DROP TABLE instance_keys;
        DROP TABLE suppressions;
        ALTER TABLE newsletter_issues DROP COLUMN segment_id;
        DROP TABLE issue_lists;
        DROP TABLE segments;
        ALTER TABLE subscriptions DROP COLUMN attributes;
        DROP TABLE list_memberships;
        DROP TABLE lists;
        """
    )
