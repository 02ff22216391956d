"""``flask --app wsgi stations …`` commands."""
from __future__ import annotations

import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup

from app.geo.coordsys import COORDSYS
from app.stations.importing import FORMATS, ImportFileError, parse_file

stations_cli = AppGroup("stations", help="Import and inspect stations.")


def _say(message: str) -> None:
    click.echo(message, err=True)


@stations_cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Default: from the file extension.")
@click.option("--coordsys", type=click.Choice(COORDSYS), default="wgs84", show_default=True,
              help="Coordinate system of the file (gcj02 for Amap/Tencent exports, bd09 for Baidu).")
@click.option("--source", help="Data source name; (source, source_id) identifies a station. Default: file name.")
@click.option("--timezone", default=None, help="Time zone the opening hours are in. Default: YIZHAN_TIMEZONE.")
@click.option("--dry-run", is_flag=True, help="Validate and report; write nothing.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows even if some are bad.")
def import_stations(path, fmt, coordsys, source, timezone, dry_run, skip_invalid):
    """Import stations from a CSV or GeoJSON file (idempotent: re-importing updates)."""
    started = time.perf_counter()
    try:
        parsed = parse_file(
            path, fmt=fmt, source=source, coordsys=coordsys,
            timezone=timezone or current_app.config["YIZHAN_TIMEZONE"],
            progress=lambda n: _say(f"  read {n:,} rows…"),
        )
    except ImportFileError as exc:
        raise click.ClickException(str(exc)) from None
    for bad in parsed.errors:
        _say(f"  {path} {bad}")
    summary = f"{parsed.rows:,} rows: {len(parsed.stations):,} valid, {len(parsed.errors):,} invalid"
    if parsed.not_stations:
        summary += f", {parsed.not_stations:,} not stations (ignored)"
    _say(summary)
    if parsed.errors and not skip_invalid:
        _say("Nothing imported: fix the rows above, or pass --skip-invalid to import the valid ones.")
        sys.exit(1)
    if dry_run:
        _say("Dry run: nothing written.")
        return
    store = current_app.extensions["yizhan_store"]
    total = len(parsed.stations)
    counts = store.upsert(parsed.stations, progress=lambda n: _say(f"  wrote {n:,}/{total:,}…"))
    elapsed = time.perf_counter() - started
    _say(
        f"Imported into {store.backend}: {counts.inserted:,} new, {counts.updated:,} updated, "
        f"{counts.unchanged:,} unchanged in {elapsed:.1f}s."
    )


@stations_cli.command("count")
def count_stations():
    """Print how many stations the store holds."""
    click.echo(current_app.extensions["yizhan_store"].count())


def init_app(app) -> None:
    app.cli.add_command(stations_cli)
