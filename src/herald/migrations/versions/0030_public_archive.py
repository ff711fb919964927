"""The public archive and feeds (the deliverability issue): ``newsletter_issues.public`` and
``newsletter_issues.archive_slug``.

* ``public`` (default false): the editor's choice that the issue, once sent, is shown on the
  archive page and in the feeds of each of its public lists (``/archive/{list slug}``).
* ``archive_slug``: the issue's address in the archive (``/archive/{list}/{archive_slug}``),
  derived from the title *once*, when a public issue starts publishing (or a published issue
  is made public), and never changed afterwards, so links and feed ids stay valid whatever
  the title becomes. Unique across issues (an issue on several lists has one slug, unique in
  each of them); two issues titled alike get ``weekly-news`` and ``weekly-news-2``.

The slug is given by a trigger (``herald_issue_archive_slug``), not by the code that
publishes, so that an issue published by the previous release — a scheduled issue an editor
of this release marked public, published by an old worker — gets its slug all the same. The
trigger serialises slug choices on a transaction advisory lock (publishes are rare) and the
unique index is the backstop; it also refuses to change or clear a slug once given. The
title's words come from its NFKD form with the non-ASCII characters dropped (``Café`` →
``cafe``), at most 80 characters of whole words; a title with none (emoji, a non-Latin
script) is ``issue``.

For the previous release: two columns with constant defaults (no rewrite; its INSERTs do not
name them), indexes on a small table, and a trigger that only fills a column it never reads.
Nothing to contract.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        ALTER TABLE newsletter_issues
            ADD COLUMN public boolean NOT NULL DEFAULT false,
            ADD COLUMN archive_slug text
                CONSTRAINT newsletter_issues_archive_slug_check
                CHECK (archive_slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(archive_slug) <= 100);
        CREATE UNIQUE INDEX newsletter_issues_archive_slug ON newsletter_issues (archive_slug);
        -- A list's archive and feeds: its public sent issues, newest first.
        CREATE INDEX newsletter_issues_archive ON newsletter_issues (published_at DESC, id DESC)
            WHERE public AND status = 'sent';

        -- A title's words in lowercase ASCII joined by hyphens: NFKD first, so accented
        -- letters keep their base letter, then every other non-ASCII character dropped.
        CREATE FUNCTION herald_slug_words(title text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT trim(BOTH '-' FROM regexp_replace(
                lower(regexp_replace(normalize(title, NFKD),
                                     '[^' || chr(1) || '-' || chr(127) || ']+', '', 'g')),
                '[^a-z0-9]+', '-', 'g'))
        $$;

        -- At most 80 characters of whole words (a first word longer than that is cut);
        -- 'issue' when the title has no letter or digit of the ASCII alphabet.
        CREATE FUNCTION herald_archive_slug_base(title text) RETURNS text
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        DECLARE
            words text := herald_slug_words(title);
        BEGIN
            IF length(words) > 80 THEN
                words := coalesce(nullif(substring(left(words, 81) FROM '^(.*)-'), ''),
                                  left(words, 80));
            END IF;
            RETURN coalesce(nullif(words, ''), 'issue');
        END
        $$;

        CREATE FUNCTION herald_issue_archive_slug() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            base text;
            candidate text;
            n integer := 1;
        BEGIN
            IF OLD.archive_slug IS NOT NULL THEN
                IF NEW.archive_slug IS DISTINCT FROM OLD.archive_slug THEN
                    RAISE EXCEPTION 'the archive slug of issue % never changes', OLD.id
                        USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            END IF;
            IF NEW.archive_slug IS NOT NULL OR NOT NEW.public
               OR NEW.status NOT IN ('publishing', 'sent') THEN
                RETURN NEW;
            END IF;
            -- One slug choice at a time: a concurrent publish of the same title waits here,
            -- then sees this one's slug (each statement of a volatile function takes a new
            -- snapshot).
            PERFORM pg_advisory_xact_lock(hashtext('herald.archive_slug'), 0);
            base := herald_archive_slug_base(NEW.title);
            candidate := base;
            WHILE EXISTS (SELECT 1 FROM newsletter_issues WHERE archive_slug = candidate) LOOP
                n := n + 1;
                candidate := base || '-' || n;
            END LOOP;
            NEW.archive_slug := candidate;
            RETURN NEW;
        END
        $$;
        CREATE TRIGGER newsletter_issues_archive_slug BEFORE UPDATE ON newsletter_issues
            FOR EACH ROW
            WHEN (OLD.archive_slug IS DISTINCT FROM NEW.archive_slug
                  OR (NEW.public AND NEW.archive_slug IS NULL
                      AND NEW.status IN ('publishing', 'sent')))
            EXECUTE FUNCTION herald_issue_archive_slug();
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TRIGGER newsletter_issues_archive_slug ON newsletter_issues;
        DROP FUNCTION herald_issue_archive_slug();
        DROP FUNCTION herald_archive_slug_base(text);
        DROP FUNCTION herald_slug_words(text);
        DROP INDEX newsletter_issues_archive;
        DROP INDEX newsletter_issues_archive_slug;
        ALTER TABLE newsletter_issues DROP COLUMN archive_slug, DROP COLUMN public;
        """
    )
