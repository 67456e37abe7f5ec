"""A PostgreSQL server of one's own on a free loopback port, from the machine's own PostgreSQL
binaries: for trying the shared store (`holdout store local-postgres DIR`), for the tests, which
start one themselves, and for the benchmarks.

PostgreSQL refuses to run as root; as root, the server runs as the `postgres` user the OS package
creates, with its data directory handed to it."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import HoldoutError

DATABASE = "holdout"


class NoPostgres(HoldoutError):
    pass


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else the Debian/Ubuntu package's place."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(Path(d) / "initdb", os.X_OK) and os.access(Path(d) / "pg_ctl", os.X_OK):
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalPostgres:
    """A server whose data lives in `directory`; `start()` creates it on first use."""

    directory: Path
    port: int = 0

    def __post_init__(self):
        self.directory = Path(self.directory).resolve()

    @property
    def dsn(self) -> str:
        return f"postgresql://{self._user()}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> LocalPostgres:
        bin_dir = binaries()
        if bin_dir is None:
            raise NoPostgres(
                "no PostgreSQL server binaries (initdb, pg_ctl) on this machine: install the OS "
                "package (Debian/Ubuntu: apt-get install postgresql)"
            )
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        port_file = self.directory / "port"  # the same port at the next start
        if not self.port and port_file.exists():
            self.port = int(port_file.read_text())
        self.port = self.port or _free_port()
        port_file.write_text(str(self.port))
        if not (data / "PG_VERSION").exists():
            data.mkdir(mode=0o700, exist_ok=True)
            self._hand_over(self.directory)
            self._as_server_user(
                [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", self._user()],
                what="initdb",
            )
        if self.running():
            self._create_database()
            return self
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c fsync=on -c max_connections=200 -c shared_buffers=128MB"
        )
        self._as_server_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.directory / "server.log"),
                "-o",
                options,
                "-w",
                "start",
            ],
            what="pg_ctl start",
        )
        self._create_database()
        return self

    def running(self) -> bool:
        bin_dir = binaries()
        data = self.directory / "data"
        if bin_dir is None or not (data / "PG_VERSION").exists():
            return False
        status = self._as_server_user(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "status"], what="pg_ctl status", check=False
        )
        return status == 0

    def stop(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            return
        self._as_server_user(
            [str(bin_dir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "stop"],
            what="pg_ctl stop",
            check=False,
        )

    def _create_database(self) -> None:
        import psycopg

        admin = f"postgresql://{self._user()}@127.0.0.1:{self.port}/postgres"
        for _ in range(50):
            try:
                with psycopg.connect(admin, autocommit=True) as db:
                    if not db.execute(
                        "SELECT 1 FROM pg_database WHERE datname=%s", (DATABASE,)
                    ).fetchone():
                        db.execute(f"CREATE DATABASE {DATABASE}")
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise NoPostgres(f"the local PostgreSQL on port {self.port} did not accept connections")

    # -- who runs it ---------------------------------------------------------------------------
    @staticmethod
    def _user() -> str:
        return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _hand_over(self, directory: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for root, dirs, files in os.walk(directory):
                for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.chown(name, entry.pw_uid, entry.pw_gid)

    def _as_server_user(self, argv: list[str], *, what: str, check: bool = True) -> int:
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise NoPostgres(
                    "PostgreSQL will not run as root, and there is no 'postgres' user to run it as"
                ) from None
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if check and done.returncode != 0:
            hint = (
                f"; as root the server runs as 'postgres', which must be able to reach "
                f"{self.directory} (its parent directories need o+x)"
                if os.geteuid() == 0 and "Permission denied" in done.stderr
                else ""
            )
            raise NoPostgres(
                f"{what} failed ({done.returncode}): {done.stderr.strip()[-500:]}{hint}"
            )
        return done.returncode
