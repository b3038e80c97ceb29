#!/usr/bin/env bash
# The database's own ceiling for one reservation at a time on this machine: pgbench runs a
# one-ticket order as a single statement (seat and tier counters, order, order item, ticket),
# against one hot event, with no HTTP and no application in between. Every such statement
# queues on the event row's lock for its own commit; the application's batches (several
# orders per transaction, see src/store/postgres/batch.rs) are how it gets past this figure.
#
#   bench/pgbench-reserve.sh            # CLIENTS=20 SECONDS=15 by default
#   CLIENTS=64 bench/pgbench-reserve.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
CLIENTS=${CLIENTS:-20}
DURATION=${DURATION:-15}
DB=nearbytix_pgbench
URL="${ADMIN_URL%/*}/${DB}"

psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" -c "CREATE DATABASE ${DB}"
cargo run --quiet --release -- migrate --database-url "$URL"

USER_ID=$(cat /proc/sys/kernel/random/uuid)
EVENT_ID=$(cat /proc/sys/kernel/random/uuid)
TIER_ID=$(cat /proc/sys/kernel/random/uuid)
psql -q "$URL" <<SQL
INSERT INTO users (id, name, email, password_hash) VALUES ('${USER_ID}', 'Bench', 'bench@example.com', 'x');
INSERT INTO events (id, creator_id, title, start_time, end_time, total_tickets, latitude, longitude,
                    venue_name, address_line1, city, state, country, postal_code)
VALUES ('${EVENT_ID}', '${USER_ID}', 'Hot event', now() + interval '1 day', now() + interval '2 days',
        100000000, 6.5, 3.4, 'Hall', '1 Road', 'Lagos', 'Lagos', 'Nigeria', '100001');
INSERT INTO ticket_tiers (id, event_id, name, price_minor, position)
VALUES ('${TIER_ID}', '${EVENT_ID}', 'General admission', 0, 0);
SQL

SCRIPT=$(mktemp)
trap 'rm -f "$SCRIPT"' EXIT
cat > "$SCRIPT" <<SQL
WITH seat AS (
  UPDATE events SET tickets_sold = tickets_sold + 1, updated_at = now()
  WHERE id = '${EVENT_ID}' AND tickets_sold < total_tickets AND start_time > now()
  RETURNING id
), tier AS (
  UPDATE ticket_tiers SET sold = sold + 1, updated_at = now()
  WHERE id = '${TIER_ID}' AND EXISTS (SELECT 1 FROM seat)
  RETURNING id
), new_order AS (
  INSERT INTO orders (id, user_id, event_id, status, currency, total_minor, expires_at)
  SELECT gen_random_uuid(), '${USER_ID}', seat.id, 'reserved', 'USD', 0, now() + interval '120 seconds'
  FROM seat, tier
  RETURNING id
), item AS (
  INSERT INTO order_items (order_id, event_id, tier_id, tier_name, quantity, unit_price_minor, line)
  SELECT id, '${EVENT_ID}', '${TIER_ID}', 'General admission', 1, 0, 0 FROM new_order
)
INSERT INTO tickets (id, user_id, event_id, order_id, tier_id, status, expires_at)
SELECT gen_random_uuid(), '${USER_ID}', '${EVENT_ID}', id, '${TIER_ID}', 'reserved', now() + interval '120 seconds'
FROM new_order;
SQL

echo "pgbench: one-ticket order as one statement, one hot event, ${CLIENTS} clients, ${DURATION}s"
pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" -f "$SCRIPT" "$URL" | grep -E "clients|latency|tps"
psql -qAt "$URL" -c "SELECT 'tickets_sold=' || tickets_sold || ' tickets=' || (SELECT count(*) FROM tickets) || ' orders=' || (SELECT count(*) FROM orders) FROM events"
psql -q "$ADMIN_URL" -c "DROP DATABASE ${DB} WITH (FORCE)"
