#!/usr/bin/env bash
# CI, cluster half: the store and handler suites again, this time against a local Redis Cluster
# (three masters with a replica each, started by the harness), then the fault tests.
# Needs redis-server and redis-cli (the redis-server package brings both); `.ci/run` installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v redis-cli >/dev/null 2>&1 || { echo "redis-cli is needed for the cluster tests" >&2; exit 1; }

# Every test starts its own six-node cluster; two at a time keeps a 2-core machine responsive
# enough that cluster nodes do not time each other out.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"

# The same suites as `cargo test`, with the harness switched to a cluster. TLS and restart tests
# (shared/tests/connection.rs) are single-node by nature and run in the main pass only.
REDIS_CLUSTER=true cargo test --locked -p bcast-shared --test events --test sessions --test properties
REDIS_CLUSTER=true cargo test --locked -p bcast-testing --test flow --test events --test fuzz --test logs

# Faults under load: standalone kill/restart, cluster master kill, manual failover (MOVED),
# READONLY after an endpoint switch, slow Redis behind a delaying proxy; and the harness itself.
cargo test --locked -p bcast-testing --test faults --test harness
