#!/bin/sh
# Runs once, when the postgres container creates its cluster (the image's
# /docker-entrypoint-initdb.d): the three login roles of docs/operations.md
# ("Database roles") with the passwords from deploy/compose/.env, so that the
# services log in as them over the network. `staffctl migrate up` (the
# migrate service) finds them and only grants; it creates the owner itself.
# The owner, staff_owner, gets LOGIN from the bootstrap because TimescaleDB
# runs its jobs as the hypertables' owner: no client may ever log in as it,
# so pg_hba.conf rejects it before any other line.
set -e
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=ingest_pw="$STAFF_INGEST_PASSWORD" \
  --set=dashboard_pw="$STAFF_DASHBOARD_PASSWORD" \
  --set=admin_pw="$STAFF_ADMIN_PASSWORD" <<'SQL'
CREATE ROLE staff_ingest LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT PASSWORD :'ingest_pw';
CREATE ROLE staff_dashboard LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT PASSWORD :'dashboard_pw';
CREATE ROLE staff_admin LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT PASSWORD :'admin_pw';
SQL
hba="$PGDATA/pg_hba.conf"
{
  printf '# Staff Control: nobody logs in as the owner (docs/operations.md, "TimescaleDB").\n'
  printf 'host    all    staff_owner    all    reject\n'
  printf 'local   all    staff_owner           reject\n'
  cat "$hba"
} >"$hba.new"
mv "$hba.new" "$hba"
