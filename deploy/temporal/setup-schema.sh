#!/bin/sh
# One-shot job (image temporalio/admin-tools): creates or upgrades Temporal's SQL schemas on
# Postgres. Idempotent: `setup-schema -v 0.0` only initialises the version table of an empty
# database, and `update-schema` applies the versioned migrations not yet applied, so it runs
# on every `docker compose up` and after every Temporal upgrade (bump the image tags together).
#
# Environment (set by docker-compose.yml): SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD,
# TEMPORAL_DBNAME, TEMPORAL_VISIBILITY_DBNAME. The databases and the role are created by
# deploy/postgres/init-databases.sh (first boot of the postgres volume).
set -eu

: "${SQL_HOST:=postgres}"
: "${SQL_PORT:=5432}"
: "${SQL_USER:=temporal}"
: "${SQL_PASSWORD:?SQL_PASSWORD must be set}"
: "${TEMPORAL_DBNAME:=temporal}"
: "${TEMPORAL_VISIBILITY_DBNAME:=temporal_visibility}"
export SQL_PASSWORD

SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

# --password is not passed on the command line: the tool reads SQL_PASSWORD.
sql_tool() {
    temporal-sql-tool --plugin postgres12 --endpoint "$SQL_HOST" --port "$SQL_PORT" --user "$SQL_USER" "$@"
}

# docker-compose waits for postgres to be healthy; this loop only covers a slow first boot.
attempt=0
until nc -z -w 5 "$SQL_HOST" "$SQL_PORT"; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge 30 ]; then
        echo "setup-schema: postgres at ${SQL_HOST}:${SQL_PORT} unreachable" >&2
        exit 1
    fi
    sleep 2
done

echo "setup-schema: persistence database ${TEMPORAL_DBNAME}"
sql_tool --db "$TEMPORAL_DBNAME" setup-schema -v 0.0
sql_tool --db "$TEMPORAL_DBNAME" update-schema -d "$SCHEMA_DIR/temporal/versioned"

echo "setup-schema: visibility database ${TEMPORAL_VISIBILITY_DBNAME}"
sql_tool --db "$TEMPORAL_VISIBILITY_DBNAME" setup-schema -v 0.0
sql_tool --db "$TEMPORAL_VISIBILITY_DBNAME" update-schema -d "$SCHEMA_DIR/visibility/versioned"

echo "setup-schema: done"
