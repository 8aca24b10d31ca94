#!/usr/bin/env bash
# One-shot init for docker-compose-cassandra.yml: creates the superuser
# admin/admin, drops the default cassandra/cassandra role, applies schema.cql.
# Safe to run again: it skips what is already done.
set -euo pipefail

HOST="${CASSANDRA_HOST:-cassandra}"
cql() { cqlsh "$HOST" 9042 --request-timeout=60 "$@"; }

ready=""
for attempt in $(seq 1 60); do
  if cql -u admin -p admin -e "SELECT release_version FROM system.local" >/dev/null 2>&1; then
    ready=yes
    break
  fi
  if cql -u cassandra -p cassandra -f /init/create_admin.cql >/dev/null 2>&1; then
    echo "created superuser admin"
    continue
  fi
  echo "waiting for Cassandra to accept logins ($attempt/60)"
  sleep 5
done
if [[ -z "$ready" ]]; then
  echo "error: Cassandra at $HOST:9042 never accepted admin/admin nor cassandra/cassandra;" \
       "see: docker compose -f docker-compose-cassandra.yml logs cassandra" >&2
  exit 1
fi

cql -u admin -p admin -f /init/drop_default_role.cql
cql -u admin -p admin -f /init/schema.cql
echo "schema applied: keyspace ecom_store, table orders_payments_facts"
