#!/usr/bin/env bash
# A production topology on one machine, every part an engine from Debian's packages:
#
#   PostgreSQL 15 x3, managed by Patroni (etcd as its store, synchronous_mode), each node in
#   a network namespace of its own (fha-pg1..3, 10.77.0.11-13, on the bridge fha0 at
#   10.77.0.1), so that a node can be cut off as a real network partition would;
#   HAProxy on 127.0.0.1:5000, sending connections to the leader by Patroni's REST check
#   (OPTIONS /primary), and on 127.0.0.1:8090 in front of the factors replicas;
#   Redis master 127.0.0.1:6391 with a replica on 6392, watched by Sentinels on 26391-26393;
#   two factors replicas on 127.0.0.1:8091 and 8092, on PostgreSQL through HAProxy and on
#   Redis through the Sentinels.
#
# Usage: deploy/local-ha/ha.sh up|down|status|leader|kill-leader|partition-leader|heal|
#                              redis-master|kill-redis-master|redis-failed-over|restore-redis|
#                              wait-healthy
# Needs root (namespaces, packages); PostgreSQL and Patroni run as the postgres user.
# State and logs: $FACTORS_HA_DIR (default /tmp/factors-ha). The factors binary:
# $FACTORS_BIN, else target/release/factors when built, else a debug build made here.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=${FACTORS_HA_DIR:-/tmp/factors-ha}
# `down` removes it whole.
case "$DIR" in "" | / | /tmp | /tmp/ | "$HOME" | /root) echo "ha.sh: FACTORS_HA_DIR=$DIR would be removed by down; give a folder of its own" >&2; exit 1 ;; esac
NET=10.77.0
BRIDGE=fha0
NODES=(1 2 3)
PG_BIN=/usr/lib/postgresql/15/bin
HAPROXY_PG=127.0.0.1:5000
HAPROXY_FACTORS=127.0.0.1:8090
FACTORS_PORTS=(8091 8092)
REDIS_PORTS=(6391 6392)
SENTINEL_PORTS=(26391 26392 26393)
REDIS_MASTER_NAME=factors-ha
# The replicas share these, so a token minted for one is good at the other. Development
# values: this topology is for trying failures, not for keeping secrets.
HS256_SECRET=local-ha-hs256-secret-0123456789abcdef
CODE_KEY=local-ha-code-hmac-key-0123456789abcdef

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'ha.sh: %s\n' "$*" >&2; exit 1; }

ensure_packages() {
  local missing=()
  command -v patroni >/dev/null || missing+=(patroni)
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v etcdctl >/dev/null || missing+=(etcd-client)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-sentinel >/dev/null || command -v redis-server >/dev/null || missing+=(redis-sentinel)
  [ -x "$PG_BIN/postgres" ] || missing+=(postgresql-15)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
}

# Runs "$@" in the background, detached, its output in log file $1.
spawn() {
  local log=$1; shift
  setsid nohup "$@" >>"$log" 2>&1 < /dev/null &
}

wait_for() { # description, seconds, command...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  # The logs' last lines, for a run whose files are gone by the time anyone looks.
  for log in "$DIR"/*.log; do
    [ -f "$log" ] && { printf -- '--- %s\n' "$log"; tail -n 15 "$log"; } >&2
  done
  die "$what did not come up in ${seconds}s (logs in $DIR)"
}

network_up() {
  ip link show "$BRIDGE" >/dev/null 2>&1 && return 0
  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for i in "${NODES[@]}"; do
    ip netns add "fha-pg$i"
    ip link add "fha-v$i" type veth peer name eth0 netns "fha-pg$i"
    ip link set "fha-v$i" master "$BRIDGE" up
    ip netns exec "fha-pg$i" ip addr add "$NET.1$i/24" dev eth0
    ip netns exec "fha-pg$i" ip link set eth0 up
    ip netns exec "fha-pg$i" ip link set lo up
  done
}

network_down() {
  for i in "${NODES[@]}"; do
    ip netns del "fha-pg$i" 2>/dev/null || true
    ip link del "fha-v$i" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
}

etcd_up() {
  mkdir -p "$DIR/etcd"
  spawn "$DIR/etcd.log" etcd --name e1 --data-dir "$DIR/etcd/data" \
    --listen-client-urls "http://$NET.1:2379" --advertise-client-urls "http://$NET.1:2379" \
    --listen-peer-urls "http://$NET.1:2380" --initial-advertise-peer-urls "http://$NET.1:2380" \
    --initial-cluster "e1=http://$NET.1:2380"
  wait_for etcd 20 etcdctl --endpoints "http://$NET.1:2379" endpoint health
}

patroni_config() { # node number
  local i=$1 node="$DIR/pg$1"
  cat <<YAML
scope: factors-ha
name: pg$i
restapi:
  listen: $NET.1$i:8008
  connect_address: $NET.1$i:8008
etcd3:
  hosts: $NET.1:2379
bootstrap:
  dcs:
    # Shorter than Patroni's defaults (30/10/10), so that a partitioned leader is replaced
    # in about ten seconds; loop_wait + 2 x retry_timeout stays below ttl.
    ttl: 10
    loop_wait: 2
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    # A commit the leader acknowledges is on the synchronous standby too, and only that
    # standby may be promoted.
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
        max_connections: 100
        max_wal_senders: 10
        max_replication_slots: 10
  initdb:
    - encoding: UTF8
    - data-checksums
  pg_hba:
    - local all all trust
    - host replication replicator $NET.0/24 trust
    - host all all $NET.0/24 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: $NET.1$i:5432
  connect_address: $NET.1$i:5432
  data_dir: $node/data
  bin_dir: $PG_BIN
  pgpass: $node/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: $node
    fsync: "on"
YAML
}

patroni_up() {
  for i in "${NODES[@]}"; do
    local node="$DIR/pg$i"
    mkdir -p "$node"
    patroni_config "$i" > "$node/patroni.yml"
    chown -R postgres:postgres "$node"
    # From the node's own folder: the postgres user may not enter the caller's (a fresh
    # clone in a mktemp folder, say), and initdb refuses to start where it cannot.
    (cd "$node" && spawn "$DIR/patroni-pg$i.log" ip netns exec "fha-pg$i" runuser -u postgres -- patroni "$node/patroni.yml")
  done
  # initdb and two base backups: slow when the disk is busy.
  wait_for "a Patroni leader" 180 leader
  # Both standbys streaming, one of them synchronous.
  wait_for "the synchronous standby" 180 bash -c \
    "curl -sf http://$NET.11:8008/cluster http://$NET.12:8008/cluster 2>/dev/null | grep -q sync_standby"
}

haproxy_up() {
  local servers="" factors=""
  for i in "${NODES[@]}"; do
    servers+="    server pg$i $NET.1$i:5432 maxconn 100 check port 8008"$'\n'
  done
  for port in "${FACTORS_PORTS[@]}"; do
    factors+="    server f$port 127.0.0.1:$port check"$'\n'
  done
  cat > "$DIR/haproxy.cfg" <<CFG
global
    maxconn 2000

defaults
    mode tcp
    retries 2
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s

# Writes go to the leader alone: Patroni answers 200 to OPTIONS /primary only there. A
# server marked down has its sessions cut, so clients reconnect to the next leader.
listen postgres
    bind $HAPROXY_PG
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
$servers
# A replica leaves the rotation when it dies or drains (SIGTERM), not when a dependency
# all replicas share is down: then every replica answers 503 UNAVAILABLE in the
# contract's format, where HAProxy, with no server left, would only close connections.
listen factors
    bind $HAPROXY_FACTORS
    balance roundrobin
    option httpchk GET /readyz
    http-check expect ! string draining
    default-server inter 1s fall 2 rise 1
$factors
listen stats
    bind 127.0.0.1:7000
    mode http
    stats enable
    stats uri /
CFG
  haproxy -c -q -f "$DIR/haproxy.cfg"
  haproxy -D -f "$DIR/haproxy.cfg" -p "$DIR/haproxy.pid"
  wait_for "HAProxy to the leader" 20 pg_isready -q -h 127.0.0.1 -p "${HAPROXY_PG##*:}"
}

redis_up() {
  mkdir -p "$DIR/redis"
  local master=${REDIS_PORTS[0]}
  for port in "${REDIS_PORTS[@]}"; do
    local extra=()
    [ "$port" != "$master" ] && extra=(--replicaof 127.0.0.1 "$master")
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR/redis" \
      --daemonize yes --pidfile "$DIR/redis/$port.pid" --logfile "$DIR/redis-$port.log" "${extra[@]}"
  done
  for port in "${SENTINEL_PORTS[@]}"; do
    cat > "$DIR/redis/sentinel-$port.conf" <<CONF
port $port
bind 127.0.0.1
dir $DIR/redis
sentinel monitor $REDIS_MASTER_NAME 127.0.0.1 $master 2
sentinel down-after-milliseconds $REDIS_MASTER_NAME 1000
sentinel failover-timeout $REDIS_MASTER_NAME 3000
CONF
    redis-server "$DIR/redis/sentinel-$port.conf" --sentinel --daemonize yes \
      --pidfile "$DIR/redis/sentinel-$port.pid" --logfile "$DIR/sentinel-$port.log"
  done
  wait_for "the Redis replica" 20 bash -c \
    "redis-cli -p ${REDIS_PORTS[1]} info replication | grep -q master_link_status:up"
}

factors_binary() {
  if [ -n "${FACTORS_BIN:-}" ]; then echo "$FACTORS_BIN"; return; fi
  if [ -x "$ROOT/target/release/factors" ]; then echo "$ROOT/target/release/factors"; return; fi
  (cd "$ROOT" && cargo build -q -p factors) >&2
  echo "$ROOT/target/debug/factors"
}

factors_up() {
  local binary sentinels=""
  binary=$(factors_binary)
  for port in "${SENTINEL_PORTS[@]}"; do sentinels+="redis://127.0.0.1:$port,"; done
  for port in "${FACTORS_PORTS[@]}"; do
    mkdir -p "$DIR/factors-$port"
    # A replica that cannot start (the database not there yet) is tried again.
    spawn "$DIR/factors-$port.log" env -C "$ROOT" \
      FACTORS_ENV=development \
      FACTORS__DATA_DIR="$DIR/factors-$port" \
      FACTORS__SERVER__ADDR="127.0.0.1:$port" \
      FACTORS__DATABASE__URL="postgres://postgres@$HAPROXY_PG/factors" \
      FACTORS__DATABASE__CREATE_DATABASE=true \
      FACTORS__DATABASE__CONNECT_WAIT=30s \
      FACTORS__REDIS__URL="${sentinels%,}" \
      FACTORS__REDIS__SENTINEL_MASTER="$REDIS_MASTER_NAME" \
      FACTORS__AUTH__HS256_SECRET="$HS256_SECRET" \
      FACTORS__CODES__HMAC_KEY="$CODE_KEY" \
      FACTORS__LOG__FORMAT=json \
      "$binary"
    echo $! > "$DIR/factors-$port.pid"
    wait_for "factors on port $port" 60 curl -sf "http://127.0.0.1:$port/readyz"
  done
  wait_for "factors behind HAProxy" 20 curl -sf "http://$HAPROXY_FACTORS/readyz"
}

# The node whose Patroni answers 200 to /primary, as pgN.
leader() {
  for i in "${NODES[@]}"; do
    if curl -sf -o /dev/null -m 1 "http://$NET.1$i:8008/primary"; then echo "pg$i"; return 0; fi
  done
  return 1
}

up() {
  [ "$(id -u)" = 0 ] || die "run as root (network namespaces, packages)"
  ensure_packages
  if [ -e "$DIR/up" ]; then die "already up ($DIR/up); run down first"; fi
  mkdir -p "$DIR"
  network_up
  say "etcd"; etcd_up
  say "Patroni: three PostgreSQL 15 nodes"; patroni_up
  say "HAProxy"; haproxy_up
  say "Redis, its replica and three Sentinels"; redis_up
  say "factors x${#FACTORS_PORTS[@]}"; factors_up
  touch "$DIR/up"
  status
}

kill_pidfile() { [ -f "$1" ] && kill -9 "$(head -n1 "$1")" 2>/dev/null || true; }

down() {
  for port in "${FACTORS_PORTS[@]}"; do kill_pidfile "$DIR/factors-$port.pid"; done
  kill_pidfile "$DIR/haproxy.pid"
  for port in "${REDIS_PORTS[@]}"; do kill_pidfile "$DIR/redis/$port.pid"; done
  for port in "${SENTINEL_PORTS[@]}"; do kill_pidfile "$DIR/redis/sentinel-$port.pid"; done
  pkill -9 -f "patroni $DIR/" 2>/dev/null || true
  for i in "${NODES[@]}"; do kill_pidfile "$DIR/pg$i/data/postmaster.pid"; done
  pkill -9 -f "etcd --name e1 --data-dir $DIR/" 2>/dev/null || true
  sleep 0.5
  network_down
  rm -rf "$DIR"
  say "down"
}

status() {
  echo "PostgreSQL leader: $(leader || echo none)  (HAProxy $HAPROXY_PG; stats http://127.0.0.1:7000/)"
  curl -s -m 2 "http://$NET.11:8008/cluster" 2>/dev/null | tr -d '\n' | head -c 600; echo
  echo "Redis master: $(redis_master)  (Sentinels ${SENTINEL_PORTS[*]}, name $REDIS_MASTER_NAME)"
  for port in "${FACTORS_PORTS[@]}"; do
    echo "factors 127.0.0.1:$port: $(curl -s -m 2 "http://127.0.0.1:$port/readyz" || echo down)"
  done
  echo "factors behind HAProxy: http://$HAPROXY_FACTORS  (token secret: FACTORS__AUTH__HS256_SECRET=$HS256_SECRET)"
}

redis_master() {
  for port in "${SENTINEL_PORTS[@]}"; do
    if addr=$(redis-cli -p "$port" sentinel get-master-addr-by-name "$REDIS_MASTER_NAME" 2>/dev/null) \
      && [ -n "$addr" ]; then
      echo "$addr" | paste -sd: -; return 0
    fi
  done
  return 1
}

# kill -9 of the leader's postmaster, as a crash would; Patroni restarts it.
kill_leader() {
  local node; node=$(leader) || die "no leader"
  kill -9 "$(head -n1 "$DIR/$node/data/postmaster.pid")"
  echo "$node"
}

# The leader's link to everything else goes down: etcd, the standbys and HAProxy lose it.
partition_leader() {
  local node; node=$(leader) || die "no leader"
  ip link set "fha-v${node#pg}" down
  echo "$node"
}

heal() {
  for i in "${NODES[@]}"; do ip link set "fha-v$i" up; done
}

# Waits until there is a leader, every node runs and one standby is synchronous, and the
# Redis master has a replica in sync.
wait_healthy() {
  local seconds=${1:-90}
  wait_for "a healthy PostgreSQL cluster" "$seconds" bash -c "
    for i in ${NODES[*]}; do
      c=\$(curl -sf -m 1 http://$NET.1\$i:8008/cluster) && break
    done
    [ \"\$(echo \"\$c\" | grep -o '\"state\": \"\\(running\\|streaming\\)\"' | wc -l)\" = ${#NODES[@]} ] &&
      echo \"\$c\" | grep -q '\"role\": \"leader\"' && echo \"\$c\" | grep -q sync_standby"
  wait_for "a Redis replica in sync" "$seconds" bash -c "
    m=\$(redis-cli -p ${SENTINEL_PORTS[0]} sentinel get-master-addr-by-name $REDIS_MASTER_NAME | tail -n1) &&
      redis-cli -p \$m info replication | grep -q 'connected_slaves:1'"
}

kill_redis_master() {
  local master port; master=$(redis_master) || die "no Redis master"
  port=${master##*:}
  kill -9 "$(cat "$DIR/redis/$port.pid")"
  echo "$port"
}

# Waits until the Sentinels name as master a server that answers as one, and prints it.
redis_failed_over() {
  local master
  for _ in $(seq 1 150); do
    if master=$(redis_master) && redis-cli -p "${master##*:}" info replication 2>/dev/null | grep -q role:master; then
      echo "$master"; return 0
    fi
    sleep 0.2
  done
  die "the Sentinels named no master that answers as one in 30 s"
}

# Starts the killed Redis server again, once the Sentinels promoted another, as its replica.
restore_redis() {
  local master; master=$(redis_failed_over)
  for port in "${REDIS_PORTS[@]}"; do
    if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
      redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR/redis" \
        --daemonize yes --pidfile "$DIR/redis/$port.pid" --logfile "$DIR/redis-$port.log" \
        --replicaof "${master%%:*}" "${master##*:}"
    fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  leader) leader ;;
  kill-leader) kill_leader ;;
  partition-leader) partition_leader ;;
  heal) heal ;;
  redis-master) redis_master ;;
  kill-redis-master) kill_redis_master ;;
  redis-failed-over) redis_failed_over ;;
  restore-redis) restore_redis ;;
  wait-healthy) wait_healthy "${2:-90}" ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
