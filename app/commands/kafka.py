"""``kairos kafka start|stop|status``: a local Apache Kafka (KRaft) for development."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType

HELP = "run a local Apache Kafka (KRaft) for development"

DESCRIPTION = """\
Run a local Apache Kafka (KRaft mode, no ZooKeeper) on 127.0.0.1 for development and tests.

The first start fetches the pinned Kafka jars with Maven (needs `java` 17+ and `mvn`) into
$KAIROS_KAFKA_HOME (default ~/.cache/kairos/kafka); later starts reuse them offline.
Every node is broker and controller; ports are picked free at start.
"""

EPILOG = """\
examples:
  kairos kafka start                 one broker in the background; prints the bootstrap
  eval "$(kairos kafka start -q)"    ... and export KAFKA_BOOTSTRAP_SERVERS in this shell
  kairos kafka start --brokers 3     three nodes (replication factor 3 possible)
  kairos kafka start --foreground    run until Ctrl-C, then stop and clean up
  kairos kafka status                is it running? which bootstrap?
  kairos kafka stop                  stop it and delete its data

state: $KAIROS_STATE_DIR/kafka.json (default ~/.cache/kairos/run/kafka.json)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "kafka",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="kafka_command", metavar="ACTION", required=True)

    start = sub.add_parser("start", help="start brokers (background unless --foreground)")
    start.add_argument("--brokers", "-n", type=int, default=1, help="number of nodes (default 1)")
    start.add_argument(
        "--foreground", "-f", action="store_true", help="stay attached; Ctrl-C stops the cluster"
    )
    start.add_argument(
        "--quiet", "-q", action="store_true", help="print only the export line (for eval)"
    )
    start.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for startup (default 120)"
    )
    start.set_defaults(func=cmd_start)

    stop = sub.add_parser("stop", help="stop the background cluster and delete its data")
    stop.set_defaults(func=cmd_stop)

    status = sub.add_parser("status", help="show the running cluster (exit 1 if none)")
    status.set_defaults(func=cmd_status)


def _err(message: str) -> int:
    print(f"kairos kafka: {message}", file=sys.stderr)
    return 1


def cmd_start(args: argparse.Namespace) -> int:
    from app.kafka import KAFKA_VERSION, KafkaCluster, KafkaLauncherError
    from app.kafka import state as st

    if args.brokers < 1:
        return _err(f"--brokers must be >= 1, got {args.brokers}")
    try:
        previous = st.load()
    except ValueError as exc:
        return _err(str(exc))
    if previous is not None:
        if previous.live_pids():
            return _err(
                f"already running at {previous.bootstrap} (pids {previous.live_pids()}); "
                "`kairos kafka stop` first"
            )
        st.stop_recorded(previous)  # stale: clean its directory and state

    if not args.quiet:
        print(f"starting Apache Kafka {KAFKA_VERSION} ({args.brokers} node(s))...", file=sys.stderr)
    cluster = KafkaCluster(
        brokers=args.brokers,
        workdir=st.state_dir() / "clusters",
        startup_timeout=args.timeout,
        die_with_parent=args.foreground,
    )
    began = time.monotonic()
    try:
        bootstrap = cluster.start()
    except KafkaLauncherError as exc:
        return _err(str(exc))
    assert cluster.directory is not None
    record = st.RecordedCluster(
        bootstrap=bootstrap,
        pids=cluster.pids,
        directory=str(cluster.directory),
        brokers=args.brokers,
        version=KAFKA_VERSION,
        started_at=time.time(),
        foreground=args.foreground,
    )
    st.save(record)
    if args.quiet:
        print(f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}")
    else:
        print(f"started in {time.monotonic() - began:.1f}s; logs in {cluster.directory}/node-*/")
        print(bootstrap)
        print(f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}")
    sys.stdout.flush()

    if not args.foreground:
        cluster.detach()
        if not args.quiet:
            print("stop it with: kairos kafka stop", file=sys.stderr)
        return 0
    return _run_foreground(cluster)


def _run_foreground(cluster: object) -> int:
    from app.kafka import KafkaCluster
    from app.kafka import state as st

    assert isinstance(cluster, KafkaCluster)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    print("running; Ctrl-C to stop", file=sys.stderr)
    code = 0
    try:
        while not done.wait(0.5):
            dead = [i for i in range(cluster.size) if not cluster.is_running(i)]
            if dead:
                print(
                    f"kairos kafka: node(s) {dead} exited:\n{cluster.log_tail(dead[0])}",
                    file=sys.stderr,
                )
                code = 1
                break
    finally:
        print("stopping...", file=sys.stderr)
        cluster.stop()
        st.clear()
    return code


def cmd_status(args: argparse.Namespace) -> int:
    from app.kafka import state as st

    try:
        record = st.load()
    except ValueError as exc:
        return _err(str(exc))
    if record is None:
        print("not running (start it with: kairos kafka start)")
        return 1
    live = record.live_pids()
    if len(live) < len(record.pids):
        print(f"degraded: {len(live)}/{len(record.pids)} node(s) alive at {record.bootstrap}")
        print("restart with: kairos kafka stop && kairos kafka start")
        return 1
    try:
        from app.kafka.probe import broker_ids

        ids = sorted(broker_ids(record.bootstrap, timeout=5.0))
        answer = f"brokers {ids} registered"
    except Exception as exc:
        answer = f"not answering metadata requests ({type(exc).__name__}: {exc})"
    age = time.time() - record.started_at
    print(
        f"running: Apache Kafka {record.version}, {record.brokers} node(s), up {age:.0f}s, {answer}"
    )
    print(f"pids {live}; data {record.directory}")
    print(f"export KAFKA_BOOTSTRAP_SERVERS={record.bootstrap}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from app.kafka import state as st

    try:
        record = st.load()
    except ValueError as exc:
        return _err(str(exc))
    if record is None:
        print("not running")
        return 0
    stopped = st.stop_recorded(record)
    print(f"stopped {len(stopped)} node(s) ({record.bootstrap})")
    return 0
