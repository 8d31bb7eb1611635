"""A real PostgreSQL (Debian's postgresql 15) for the tests: initdb in a temporary
directory owned by user postgres, the server on a free loopback port and a Unix socket
in that directory, stopped with SIGINT (fast shutdown) and removed afterwards."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from scanner.lab.peers import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def unavailable() -> str | None:
    """Why no server can be started here, or None."""
    if not (BIN / "postgres").exists():
        return "Debian's postgresql 15 is not installed"
    if os.geteuid() != 0:
        return "starting postgres as user 'postgres' needs root"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no 'postgres' user"
    return None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a SQLAlchemy URL of the 'postgres' database (trust over the socket)."""
    d = Path(tempfile.mkdtemp(prefix="dicomscan-history-pg-"))
    shutil.chown(d, "postgres", "postgres")
    d.chmod(0o700)
    port = free_port("127.0.0.1")
    log = (d / "server.log").open("wb")
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([str(BIN / "initdb"), "-D", str(d / "data"), "-U", "postgres",
                        "--auth-local=trust", "--auth-host=reject", "--no-sync", "-E", "UTF8",
                        "--locale=C.UTF-8"], user="postgres", group="postgres", cwd=d,
                       check=True, capture_output=True)
        proc = subprocess.Popen(
            [str(BIN / "postgres"), "-D", str(d / "data"), "-c", "listen_addresses=127.0.0.1",
             "-c", f"port={port}", "-c", f"unix_socket_directories={d}", "-c", "fsync=off"],
            user="postgres", group="postgres", cwd=d, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run([str(BIN / "pg_isready"), "-h", str(d), "-p", str(port), "-q"],
                             check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {(d / 'server.log').read_text()}")
            time.sleep(0.1)
        yield f"postgresql+psycopg://postgres@/postgres?host={d}&port={port}"
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def fresh_database(server_url: str, name: str) -> str:
    """A new empty database on the server; its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    with psycopg.connect(host=url.query["host"], port=int(str(url.query["port"])),
                         user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)
