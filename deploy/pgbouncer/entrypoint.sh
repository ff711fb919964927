#!/bin/sh
# Writes PgBouncer's configuration into /tmp (the root filesystem is read-only) from the
# environment, then becomes PgBouncer. POSTGRES_PASSWORD: the `herald` role's password;
# PGBOUNCER_UPSTREAM: the Postgres host.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
upstream="${PGBOUNCER_UPSTREAM:-postgres}"
umask 077

# A plain-text password here lets PgBouncer do SCRAM with both the client and the server.
printf '"herald" "%s"\n' "$POSTGRES_PASSWORD" > /tmp/userlist.txt

cat > /tmp/pgbouncer.ini <<INI
[databases]
herald = host=${upstream} port=5432 dbname=herald

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_type = scram-sha-256
auth_file = /tmp/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 1000
; asyncpg prepares every statement; PgBouncer 1.21+ maps them per server connection.
max_prepared_statements = 200
; Herald sends these at connect time. In transaction mode PgBouncer cannot keep them per
; client, so it ignores them: set them on the role instead, e.g.
;   ALTER ROLE herald SET statement_timeout = '15s';
;   ALTER ROLE herald SET idle_in_transaction_session_timeout = '60s';
ignore_startup_parameters = statement_timeout,idle_in_transaction_session_timeout
logfile =
pidfile =
INI

exec pgbouncer /tmp/pgbouncer.ini
