"""Alembic environment: runs migrations on the app's engine (PostGIS or SQLite)."""
import logging
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from flask import current_app
from sqlalchemy import MetaData

config = context.config
if config.config_file_name:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
log = logging.getLogger("alembic.env")

db = current_app.extensions["migrate"].db

AUTOGENERATE_REFUSED = (
    "`flask db migrate` (autogenerate) is not used here: the schema differs by store (PostGIS "
    "generated geometry and GiST indexes, SQLite R*Tree tables and triggers, trigger functions) "
    "in ways Alembic cannot compare, so it would propose dropping them. Write the revision by "
    "hand: `flask --app wsgi db revision -m \"what changes\"`, then add the field to the "
    "station declaration (app/stations/model.py) if it is a station column."
)


def _refuse_autogenerate(_context, _revision, directives):
    if getattr(config.cmd_opts, "autogenerate", False):
        directives[:] = []
        raise CommandError(AUTOGENERATE_REFUSED)


def run_migrations_offline():
    context.configure(url=str(db.engine.url), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            # An empty model: autogenerate gets as far as our refusal, never to a file.
            target_metadata=MetaData(),
            process_revision_directives=_refuse_autogenerate,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
