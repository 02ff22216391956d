"""``flask --app wsgi stations …``, ``network …`` and ``backup …`` commands."""
from __future__ import annotations

import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup

from app import backup
from app.geo.coordsys import COORDSYS
from app.network import service
from app.network.modes import DEFAULT_MINUTES, DEFAULT_MODE, MAX_MINUTES, MIN_MINUTES, MODE_NAMES
from app.network.osm_import import NetworkImportError
from app.stations.importing import ENCODINGS, FORMATS, ImportFileError, parse_file

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
@click.option("--encoding", type=click.Choice(ENCODINGS), default="utf-8", show_default=True,
              help="Text encoding of the file (gbk/gb18030: Excel on Chinese Windows). A UTF-8 BOM is fine.")
def import_stations(path, fmt, coordsys, source, timezone, dry_run, skip_invalid, encoding):
    """Import stations from a CSV or GeoJSON file (idempotent: re-importing updates)."""
    started = time.perf_counter()
    try:
        parsed = parse_file(
            path, fmt=fmt, source=source, coordsys=coordsys,
            timezone=timezone or current_app.config["YIZHAN_TIMEZONE"], encoding=encoding,
            progress=lambda n: _say(f"  read {n:,} rows…"),
        )
    except ImportFileError as exc:
        raise click.ClickException(str(exc)) from None
    for note in parsed.notes:
        _say(f"  {path}: {note}")
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
    if counts.inserted or counts.updated:
        _say("  refreshing the search index's statistics…")
        store.analyze_search()
    elapsed = time.perf_counter() - started
    _say(
        f"Imported into {store.backend}: {counts.inserted:,} new, {counts.updated:,} updated, "
        f"{counts.unchanged:,} unchanged in {elapsed:.1f}s."
    )


@stations_cli.command("count")
def count_stations():
    """Print how many stations the store holds."""
    click.echo(current_app.extensions["yizhan_store"].count())


network_cli = AppGroup("network", help="Road networks, service areas and coverage.")


@network_cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--no-stations", is_flag=True, help="Only the road network; skip the extract's stations.")
@click.option("--force", is_flag=True,
              help=f"Import even if the file holds much less road than the network in use "
                   f"(under {service.KEEP_AT_LEAST:.0%} of its segments or km).")
def import_network(path, no_stations, force):
    """Build walk and e-bike graphs from an OpenStreetMap extract and swap them in atomically."""
    started = time.perf_counter()
    try:
        report = service.import_network(
            current_app.extensions["yizhan_store"], path, with_stations=not no_stations,
            timezone=current_app.config["YIZHAN_TIMEZONE"], force=force, progress=lambda m: _say(f"  {m}"),
        )
    except NetworkImportError as exc:
        raise click.ClickException(f"{exc} (the previous network, if any, is still in use)") from None
    for line in report.stations_invalid:
        _say(f"  skipped station {line}")
    if not no_stations:
        counts = report.stations_written
        written = f"{counts.inserted:,} new, {counts.updated:,} updated, {counts.unchanged:,} unchanged" if counts else "none"
        _say(f"Stations from the extract: {report.stations_found:,} found ({written}).")
    _say(f"Places for search (named streets, squares, neighbourhoods, landmarks): {report.places_found:,}.")
    _say(f"Network imported in {time.perf_counter() - started:.1f}s.")


@network_cli.command("service-areas")
@click.option("--minutes", type=click.IntRange(MIN_MINUTES, MAX_MINUTES), default=DEFAULT_MINUTES, show_default=True)
@click.option("--mode", type=click.Choice(MODE_NAMES), default=DEFAULT_MODE, show_default=True)
def service_areas(minutes, mode):
    """Precompute each active station's service area (only those missing or out of date)."""
    def progress(done, total, seconds):
        _say(f"  {done:,}/{total:,} stations ({done / max(seconds, 1e-9):,.0f}/s)")

    try:
        run = service.refresh_service_areas(
            current_app.extensions["yizhan_store"], current_app.extensions["yizhan_graphs"],
            mode=mode, minutes=minutes, speed_kmh=current_app.config["YIZHAN_SPEEDS_KMH"][mode],
            progress=progress,
        )
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    rate = f" ({run.computed / run.seconds:,.1f} stations/s)" if run.seconds else ""
    _say(f"{minutes}-minute {mode} service areas: {run.computed:,} computed{rate}, "
         f"{run.off_network:,} stations more than 300 m from the network, "
         f"{run.dropped:,} dropped for inactive stations.")


backup_cli = AppGroup("backup", help="Back up the database and photos; restore them into an empty database.")


@backup_cli.command("create")
@click.argument("parent", type=click.Path(file_okay=False))
def create_backup(parent):
    """Back up DATABASE_URL (pg_dump, or SQLite's online backup) and YIZHAN_UPLOAD_DIR into a new
    dated directory under PARENT, with a manifest; safe while the service runs. Prints the directory."""

    try:
        made = backup.create(current_app.config["SQLALCHEMY_DATABASE_URI"], current_app.config["YIZHAN_UPLOAD_DIR"],
                             parent)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    manifest = backup.verify(str(made))
    _say(f"Backed up {manifest['store']} at revision {manifest['alembic_revision']} and "
         f"{manifest['photos']:,} photo(s): " + ", ".join(f"{name} {f['bytes']:,} bytes"
                                                          for name, f in manifest["files"].items()))
    click.echo(made)


@backup_cli.command("restore")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def restore_backup(directory):
    """Restore a backup DIRECTORY into DATABASE_URL, which must be an empty database (a new one,
    not the damaged one), and into YIZHAN_UPLOAD_DIR, which must be empty. Checks the manifest's
    sums first."""

    try:
        manifest = backup.restore(directory, current_app.config["SQLALCHEMY_DATABASE_URI"],
                                  current_app.config["YIZHAN_UPLOAD_DIR"])
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    _say(f"Restored the {manifest['store']} backup of {manifest['created_at']} (revision "
         f"{manifest['alembic_revision']}) and {manifest['photos']:,} photo(s).")


def init_app(app) -> None:
    from app.ops import cli as ops_cli

    ops_cli.add_station_commands(stations_cli)
    app.cli.add_command(stations_cli)
    app.cli.add_command(network_cli)
    app.cli.add_command(backup_cli)
    ops_cli.register(app)
