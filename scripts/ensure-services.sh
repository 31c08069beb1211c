#!/usr/bin/env bash
# Start PostgreSQL, Redis and RabbitMQ on their standard local ports when they do not answer.
# These are the machine's shared services: this only ever starts them, never stops them.
set -uo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do answers "$port" && { echo "$name answers on $port"; return 0; }; sleep 1; done
  echo "$name did not come up on $port" >&2
  return 1
}

status=0
if ! answers 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_for PostgreSQL 5432 || status=1
fi
if ! answers 6379; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  wait_for Redis 6379 || status=1
fi
if ! answers 5672; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true
  wait_for RabbitMQ 5672 || status=1
fi
exit $status
