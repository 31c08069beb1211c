#!/usr/bin/env bash
# Runs once, when the postgres container starts on an empty data volume
# (mounted into /docker-entrypoint-initdb.d/ by docker-compose.yml).
# One database and one login role per service: no service can read another's tables.
set -euo pipefail

create() {
  local role="$1" password="$2" database="$3"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set=role="$role" --set=password="$password" --set=database="$database" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
SQL
}

create auth "${AUTH_DB_PASSWORD:?}" gatehouse_auth
create users "${USERS_DB_PASSWORD:?}" gatehouse_users
create notifier "${NOTIFIER_DB_PASSWORD:?}" gatehouse_notifier
