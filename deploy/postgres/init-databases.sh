#!/bin/bash
# Run once by the postgres image's entrypoint, on the first boot of an empty data volume
# (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
#
# The image itself creates the application's role and database from POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB (relais / relais). This script adds Temporal's own role,
# which owns nothing but its two databases:
#   temporal             persistence (history, tasks, namespaces...)
#   temporal_visibility  SQL visibility (list/count workflows, search attributes)
# Their schemas are created by the temporal-admin-tools job (deploy/temporal/setup-schema.sh).
#
# Changing these values later does not touch an existing volume: this script only runs on
# first initialisation.
set -euo pipefail

: "${TEMPORAL_DB_USER:=temporal}"
: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD must be set}"

# psql variables (:"ident" / :'literal') quote the values; nothing is pasted into the SQL.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v temporal_user="$TEMPORAL_DB_USER" -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE :"temporal_user" LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER :"temporal_user";
CREATE DATABASE temporal_visibility OWNER :"temporal_user";
-- SQL visibility's schema needs btree_gin (trusted since PG 13, so its owner could create it
-- too); created here as superuser so that the schema job never depends on that.
\connect temporal_visibility
CREATE EXTENSION IF NOT EXISTS btree_gin;
SQL

echo "init-databases: role ${TEMPORAL_DB_USER} and databases temporal, temporal_visibility created"
