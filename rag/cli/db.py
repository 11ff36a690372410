"""``rag db``: a private PostgreSQL (pgserver) for people without a database, and schema upkeep.

    rag db start [--dir .pgdata]     start (or find) the server in a folder; print RAG_DATABASE_URL
    rag db stop  [--dir .pgdata]     stop it
    rag db migrate                   apply the schema migrations to RAG_DATABASE_URL

pgserver ships PostgreSQL 16 with pgvector. Run as root it starts the server as the system user
``pgserver`` (created when missing), since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rag.errors import ConfigError

db_app = typer.Typer(add_completion=False, no_args_is_help=True,
                     help="A private PostgreSQL for RAG_STORE=postgres (pgserver), and schema migrations.")

DirOpt = Annotated[Path, typer.Option("--dir", help="folder of the database files")]


def start_server(folder: Path):
    """Start (or attach to) the pgserver instance in ``folder``; it keeps running after we exit."""
    try:
        import pgserver
    except ImportError as e:
        raise ConfigError("`rag db start` needs the 'postgres' extra: pip install 'nk-rag[postgres]'") from e
    folder = Path(folder).expanduser().resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(folder, cleanup_mode=None)


@db_app.command("start")
def start(folder: DirOpt = Path(".pgdata")) -> None:
    """Start a private PostgreSQL + pgvector in FOLDER and print the RAG_DATABASE_URL to use."""
    from rag.index.postgres.db import Database

    server = start_server(folder)
    url = server.get_uri()
    db = Database(url)
    try:
        db.migrate()
    finally:
        db.close()
    typer.echo(f"export RAG_STORE=postgres RAG_DATABASE_URL='{url}'")


@db_app.command("stop")
def stop(folder: DirOpt = Path(".pgdata")) -> None:
    """Stop the private PostgreSQL in FOLDER."""
    import pgserver

    folder = Path(folder).expanduser().resolve()
    if not (folder / "postmaster.pid").exists():
        typer.echo(f"no server running in {folder}")
        return
    user = "pgserver" if _is_root() else None
    pgserver.pg_ctl(["-w", "stop"], pgdata=folder, user=user)
    typer.echo(f"stopped the server in {folder}")


@db_app.command("migrate")
def migrate() -> None:
    """Create or update the tables in RAG_DATABASE_URL."""
    from rag.config import get_settings
    from rag.index.postgres.db import Database

    db = Database(get_settings().database_url or "")
    try:
        applied = db.migrate()
        typer.echo(f"schema version {db.schema_version()}" + (f" (applied {applied})" if applied else " (up to date)"))
    finally:
        db.close()


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
