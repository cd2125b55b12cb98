"""A throw-away PostgreSQL server for the ``postgres`` tests (no pytest-postgresql needed).

``PgServer.start()`` runs ``initdb`` into a fresh temporary directory, starts the
server with ``pg_ctl`` on a free port bound to 127.0.0.1 only (no Unix socket in
a shared directory), creates a login role and a database owned by it, and
``stop()`` stops the server and removes the directory. As root (CI runs as root)
the binaries run as the ``postgres`` system user through ``runuser`` and the
directory is handed to that user first; PostgreSQL refuses to run as root.

The binaries are looked up in ``$PG_BIN``, then ``/usr/lib/postgresql/<ver>/bin``
(newest first), then ``PATH``. ``.ci/run`` installs the Debian ``postgresql``
package when none is found. Under ``CI=true`` a server that cannot start FAILS
the tests that need it (they never skip in CI); elsewhere they skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLE = "bulwark_tester"
PASSWORD = "bulwark-test-pw"
DATABASE = "bulwark_test"


class PgUnavailable(Exception):
    """The server cannot be started here; the message says why."""


def find_bin_dir() -> Path | None:
    env = os.environ.get("PG_BIN")
    if env and (Path(env) / "initdb").is_file():
        return Path(env)

    def version(p: Path) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in p.parent.name.split("."))
        except ValueError:
            return (0,)

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: version(
        p.parent), reverse=True)
    if found:
        return found[0].parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bin_dir: Path
    base: Path
    port: int = 0
    user: str | None = None          # system user running the server (None: ourselves)

    @property
    def data(self) -> Path:
        return self.base / "data"

    def _cmd(self, *args: str) -> list[str]:
        if self.user:
            return ["runuser", "-u", self.user, "--", *args]
        return list(args)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=str(self.base))
        if proc.returncode != 0:
            raise PgUnavailable(f"{' '.join(args[:2])} failed ({proc.returncode}): "
                                f"{(proc.stderr or proc.stdout).strip()[-800:]}")
        return proc

    @classmethod
    def start(cls) -> PgServer:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PgUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) found; "
                                "install the Debian package 'postgresql' (.ci/run does)")
        base = Path(tempfile.mkdtemp(prefix="bulwark-pg-"))
        user = None
        if os.geteuid() == 0:
            user = "postgres"
            try:
                pw = pwd.getpwnam(user)
            except KeyError as exc:
                shutil.rmtree(base, ignore_errors=True)
                raise PgUnavailable("running as root and there is no 'postgres' system "
                                    "user to run the server as") from exc
            os.chown(base, pw.pw_uid, pw.pw_gid)
            os.chmod(base, 0o700)
            os.chmod(base.parent, os.stat(base.parent).st_mode | 0o001)   # traverse /tmp
        server = cls(bin_dir, base, user=user)
        try:
            server._init_and_start()
        except BaseException:
            server.stop()
            raise
        return server

    def _init_and_start(self) -> None:
        pwfile = self.base / "pw"
        pwfile.write_text(PASSWORD + "\n", encoding="utf-8")
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "scram-sha-256", "--pwfile", str(pwfile), "-E", "UTF8",
                  "--no-locale", "--no-sync")
        for attempt in range(5):
            self.port = free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                    f"-c unix_socket_directories='' -c fsync=off -c max_connections=60 "
                    f"-c synchronous_commit=off -c full_page_writes=off")
            try:
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
                          "-o", opts, "-l", str(self.base / "server.log"), "start")
                break
            except PgUnavailable:
                if attempt == 4:
                    log = (self.base / "server.log")
                    tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
                    raise PgUnavailable(f"pg_ctl start failed: {tail}") from None
        self.admin_sql(f"create role {ROLE} login password '{PASSWORD}' createdb")
        self.admin_sql(f"create database {DATABASE} owner {ROLE}")

    # -- connections
    def connect(self, user: str = ROLE, password: str = PASSWORD,
                database: str = DATABASE) -> Any:
        import psycopg2  # dbt-postgres' own driver

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user=user,
                               password=password, dbname=database, connect_timeout=10)
        con.autocommit = True
        return con

    def admin_sql(self, sql: str) -> None:
        con = self.connect("postgres", PASSWORD, "postgres")
        try:
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        con = self.connect()
        try:
            with con.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            con.close()

    def schemas(self) -> set[str]:
        """The schemas a test may have created (not the system ones, not public)."""
        rows = self.query("select nspname from pg_namespace where nspname not like 'pg\\_%' "
                          "and nspname not in ('information_schema', 'public')")
        return {r[0] for r in rows}

    def profile(self, profile_name: str, schema: str = "analytics", target: str = "pg",
                threads: int = 4) -> dict[str, Any]:
        """A profiles.yml entry (password via env_var, as users write it)."""
        return {profile_name: {"target": target, "outputs": {target: {
            "type": "postgres", "host": "127.0.0.1", "port": self.port, "user": ROLE,
            "password": "{{ env_var('BULWARK_TEST_PG_PASSWORD') }}", "dbname": DATABASE,
            "schema": schema, "threads": threads}}}}

    def stop(self) -> None:
        if self.data.is_dir() and (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "-t", "60", "stop")
        for _ in range(20):
            try:
                shutil.rmtree(self.base)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.2)
