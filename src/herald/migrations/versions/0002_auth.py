"""Admin users, server-side sessions, login throttling and API keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from herald.migrations import LOCK_TIMEOUT, run_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        CREATE TABLE users (
            id                   uuid PRIMARY KEY,
            username             text NOT NULL,
            password_hash        text NOT NULL,
            created_at           timestamptz NOT NULL DEFAULT now(),
            password_changed_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX users_username_key ON users (lower(username));

        -- Only a SHA-256 of the 256-bit cookie token is stored.
        CREATE TABLE sessions (
            token_hash    bytea PRIMARY KEY,
            user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            created_at    timestamptz NOT NULL DEFAULT now(),
            last_seen_at  timestamptz NOT NULL DEFAULT now(),
            expires_at    timestamptz NOT NULL,
            user_agent    text,
            ip            text
        );
        CREATE INDEX sessions_user ON sessions (user_id);
        CREATE INDEX sessions_expires ON sessions (expires_at);

        -- Failed logins, counted per username and per client IP over a sliding window.
        CREATE TABLE login_failures (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            scope      text NOT NULL CHECK (scope IN ('username', 'ip')),
            key        text NOT NULL,
            failed_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX login_failures_lookup ON login_failures (scope, key, failed_at);

        CREATE TABLE api_keys (
            id            uuid PRIMARY KEY,
            user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            name          text NOT NULL,
            prefix        text NOT NULL,
            key_hash      bytea NOT NULL UNIQUE,
            scope         text NOT NULL CHECK (scope IN ('read', 'write')),
            created_at    timestamptz NOT NULL DEFAULT now(),
            last_used_at  timestamptz,
            revoked_at    timestamptz
        );
        CREATE INDEX api_keys_user ON api_keys (user_id, created_at);
        """
    )


def downgrade() -> None:
    run_sql(
        LOCK_TIMEOUT
        + """
        DROP TABLE api_keys;
        DROP TABLE login_failures;
        DROP TABLE sessions;
        DROP TABLE users;
        """
    )
