#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1 for tests and CI.
#
#   broker.sh start PORT CONTROLLER_PORT DATA_DIR   write DATA_DIR/server.properties, format the storage
#                                                  (unless formatted before: a restart keeps the data),
#                                                  start the broker in the background (log: DATA_DIR/broker.log,
#                                                  pid: DATA_DIR/broker.pid) and print its PID
#   broker.sh stop PID_OR_DATA_DIR                 SIGTERM, then SIGKILL after RXSTREAM_KAFKA_STOP_TIMEOUT (20 s)
#
# The jars come from install.sh (run it first), in ${RXSTREAM_KAFKA_CACHE:-$HOME/.cache/rxstream-kafka}/libs.
# Environment: JAVA_HOME (optional; else java on PATH), RXSTREAM_KAFKA_HEAP (default 512m),
# RXSTREAM_KAFKA_LOG_LEVEL (root log level, default WARN), RXSTREAM_KAFKA_WATCH_PID (optional: stop the
# broker when that process exits, so a killed test run does not leave a broker behind).
# "start" only starts the broker; the caller waits until it answers on PORT.
set -euo pipefail

cache="${RXSTREAM_KAFKA_CACHE:-$HOME/.cache/rxstream-kafka}"
libs="$cache/libs"

usage() {
    echo "usage: $0 start PORT CONTROLLER_PORT DATA_DIR | stop PID_OR_DATA_DIR" >&2
    exit 2
}

# True while PID runs (a zombie waiting to be reaped counts as gone).
alive() {
    local state=""
    kill -0 "$1" 2>/dev/null || return 1
    if [[ -r "/proc/$1/stat" ]]; then
        state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null || true)"
    fi
    [[ "$state" != "Z" ]]
}

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        echo "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        echo "broker.sh: java not found (set JAVA_HOME or put java on PATH)" >&2
        exit 2
    fi
}

write_config() {
    local port="$1" cport="$2" dir="$3"
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.voters=1@127.0.0.1:$cport
log.dirs=$dir/data
metadata.log.dir=$dir/metadata
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=1048576
log.retention.check.interval.ms=10000
num.network.threads=2
num.io.threads=4
EOF
    cat >"$dir/log4j2.properties" <<EOF
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${RXSTREAM_KAFKA_LOG_LEVEL:-WARN}
rootLogger.appenderRef.out.ref = OUT
# keep the "started" / "shutting down" lines
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
EOF
}

# A cluster id as StorageTool's random-uuid makes it: 16 random bytes, base64url without padding, not
# starting with '-' (generated here to save a JVM start).
cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" == -* ]] || break
    done
    echo "$id"
}

format_storage() {
    local java="$1" dir="$2" id cls
    # formatted before: a restart on the same data keeps its cluster id (formatting again would refuse it)
    [[ -f "$dir/metadata/meta.properties" ]] && return 0
    id="$(cluster_id)"
    # kafka.tools.StorageTool is where 4.0-4.1 keep it (in kafka_2.13); a later version may move it to
    # org.apache.kafka.tools, so try that if the first class is missing.
    for cls in kafka.tools.StorageTool org.apache.kafka.tools.StorageTool; do
        if "$java" -XX:TieredStopAtLevel=1 -cp "$libs/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
            "$cls" format --ignore-formatted -t "$id" -c "$dir/server.properties" >"$dir/format.log" 2>&1; then
            return 0
        fi
        grep -q "Could not find or load main class" "$dir/format.log" || break
    done
    echo "broker.sh: storage format failed:" >&2
    cat "$dir/format.log" >&2
    exit 1
}

start() {
    [[ $# -eq 3 ]] || usage
    local port="$1" cport="$2" dir="$3" java pid
    if ! compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
        echo "broker.sh: no Kafka jars in $libs (run tests/kafka/install.sh first)" >&2
        exit 2
    fi
    java="$(java_bin)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    write_config "$port" "$cport" "$dir"
    format_storage "$java" "$dir"
    "$java" "-Xmx${RXSTREAM_KAFKA_HEAP:-512m}" -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
        >"$dir/broker.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/broker.pid"
    if [[ -n "${RXSTREAM_KAFKA_WATCH_PID:-}" ]]; then
        # Watchdog: stop the broker if the process that started it goes away without stopping it.
        local watch="$RXSTREAM_KAFKA_WATCH_PID"
        (
            while alive "$watch" && alive "$pid"; do sleep 2; done
            if alive "$pid"; then
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 1 40); do alive "$pid" || exit 0; sleep 0.5; done
                kill -KILL "$pid" 2>/dev/null || true
            fi
        ) >/dev/null 2>&1 </dev/null &
        disown
    fi
    echo "$pid"
}

stop() {
    [[ $# -eq 1 ]] || usage
    local target="$1" pid timeout
    if [[ -d "$target" ]]; then
        [[ -f "$target/broker.pid" ]] || { echo "broker.sh: no broker.pid in $target" >&2; exit 0; }
        pid="$(cat "$target/broker.pid")"
    else
        pid="$target"
    fi
    [[ "$pid" =~ ^[0-9]+$ ]] || { echo "broker.sh: not a PID: $pid" >&2; exit 2; }
    alive "$pid" || exit 0
    kill -TERM "$pid" 2>/dev/null || true
    timeout="${RXSTREAM_KAFKA_STOP_TIMEOUT:-20}"
    for _ in $(seq 1 $((timeout * 5))); do
        alive "$pid" || exit 0
        sleep 0.2
    done
    echo "broker.sh: broker $pid still up after ${timeout}s, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

[[ $# -ge 1 ]] || usage
cmd="$1"
shift
case "$cmd" in
    start) start "$@" ;;
    stop) stop "$@" ;;
    *) usage ;;
esac
