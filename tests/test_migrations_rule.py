"""Zero-downtime upgrades: a release's migrations run while the previous release still serves
(README, Deploying, "Upgrading without downtime"), so they may only expand the schema. This
reads every revision's ``upgrade()`` (its Alembic operations and literal SQL) and flags what the
previous release could trip over or wait behind:

- dropping or renaming a table or column of an existing table (the old code still reads it);
- a NOT NULL column added to an existing table without a server default (the old code's INSERTs
  leave it out), or an existing column made NOT NULL or given another type (a rewrite, an
  exclusive lock, and the old code's writes may break);
- a server default that is not a constant (a volatile default rewrites the table on PostgreSQL);
- an index built on an existing table without CONCURRENTLY (it blocks writes while it builds);
- SQL the check cannot read (built at run time), which then needs a look by a person.

A flagged operation is allowed only with a reason in ALLOWED below: migrations that ran before
this rule, and contract steps (the drop, in a later release, of what no serving release reads).
"""
from __future__ import annotations

import ast
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSIONS = os.path.join(ROOT, "migrations", "versions")

_BEFORE = "ran before the zero-downtime rule (issue #11); every deployment has it"
# (revision file, finding) -> why it is allowed.
ALLOWED = {
    ("0005_station_signature.py", "SQL built at run time"):
        _BEFORE + "; creates the triggers of a new table (station_signature) and its backfill",
    ("0006_operations.py", "SQL built at run time"): _BEFORE + "; the append-only triggers of new tables",
    ("0007_ratings.py", "SQL built at run time"): _BEFORE + "; replaces a trigger function (CREATE OR REPLACE)",
    ("0008_live_status.py", "index ix_station_source_id on existing table station without CONCURRENTLY"):
        _BEFORE + "; station held a few thousand rows then (seconds of blocked writes at most)",
    ("0010_search.py", "SQL built at run time"): _BEFORE + "; SQLite's FTS tables and triggers (new objects)",
    ("0010_search.py", "SQL: index on existing table station without CONCURRENTLY"):
        _BEFORE + "; the trigram index on station.search_key, a column this same revision adds",
}

_FORBIDDEN_SQL = [
    (re.compile(r"\bDROP\s+(TABLE|COLUMN)\b", re.I), "SQL: drop"),
    (re.compile(r"\bRENAME\b", re.I), "SQL: rename"),
    (re.compile(r"\bALTER\s+COLUMN\b.*\b(TYPE|SET\s+NOT\s+NULL)\b", re.I | re.S), "SQL: column type or NOT NULL"),
]
_SQL_INDEX = re.compile(r"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?\w+\s+ON\s+"
                        r"(?:ONLY\s+)?(\w+)", re.I)
_SQL_NEW_TABLE = re.compile(r"\bCREATE\s+(?:VIRTUAL\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)


def _const(node):
    return node.value if isinstance(node, ast.Constant) else None


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _arg(call: ast.Call, index: int, name: str):
    return call.args[index] if len(call.args) > index else _kw(call, name)


def _constant_default(node) -> bool:
    """A constant server default: a literal, or sa.text()/literal_column() of a literal without a call in it."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        return "(" not in str(node.args[0].value)
    return False


def _column_findings(table: str, column: ast.AST) -> list[str]:
    if not (isinstance(column, ast.Call) and getattr(column.func, "attr", getattr(column.func, "id", "")) == "Column"):
        return [f"column added to {table} that the check cannot read"]
    name = _const(column.args[0]) if column.args else None
    default = _kw(column, "server_default")
    not_null = _const(_kw(column, "nullable")) is False or _const(_kw(column, "primary_key")) is True
    found = []
    if not_null and default is None:
        found.append(f"NOT NULL column {table}.{name} without a server default")
    if default is not None and not _constant_default(default):
        found.append(f"column {table}.{name} with a server default that is not a constant")
    return found


def findings(source: str) -> list[str]:
    """What a revision's upgrade() does that the previous release may trip over (see the module doc)."""
    tree = ast.parse(source)
    upgrade = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None)
    if upgrade is None:
        return []
    # Tables this revision creates: anything done to them is done before any code reads them.
    new = set()
    for node in ast.walk(upgrade):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "create_table":
            new.add(_const(node.args[0]))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "execute" and node.args:
            new.update(_SQL_NEW_TABLE.findall(str(_const(node.args[0]) or "")))
    batches = {}  # `with op.batch_alter_table("t") as name` -> "t"
    for node in ast.walk(upgrade):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "batch_alter_table" \
                        and isinstance(item.optional_vars, ast.Name):
                    batches[item.optional_vars.id] = _const(call.args[0])

    found: list[str] = []
    for node in ast.walk(upgrade):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)):
            continue
        receiver, name = node.func.value.id, node.func.attr
        if receiver in batches:  # batch ops: the table comes from the with, arguments shift by one
            table, args = batches[receiver], [None, *node.args]
        elif receiver == "op":
            args = node.args
            table = _const(args[0]) if args and name != "create_index" else None
        else:
            continue
        call = ast.Call(func=node.func, args=args, keywords=node.keywords)
        if name == "create_index":
            table = _const(_arg(call, 1, "table_name"))
            concurrently = _const(_kw(call, "postgresql_concurrently")) is True
            if table not in new and not concurrently:
                index = _const(_arg(call, 0, "index_name"))
                found.append(f"index {index} on existing table {table} without CONCURRENTLY")
            continue
        if table in new:
            continue
        if name in ("drop_table", "rename_table", "drop_column"):
            found.append(f"{name} on existing table {table}")
        elif name == "alter_column":
            column = _const(_arg(call, 1, "column_name"))
            for keyword, what in (("new_column_name", "renamed"), ("type_", "given another type")):
                if _kw(call, keyword) is not None:
                    found.append(f"column {table}.{column} {what}")
            if _const(_kw(call, "nullable")) is False:
                found.append(f"column {table}.{column} made NOT NULL")
        elif name == "add_column":
            found.extend(_column_findings(table, _arg(call, 1, "column")))
        elif name == "execute" and receiver == "op":
            sql = _const(args[0]) if args else None
            if not isinstance(sql, str):
                found.append("SQL built at run time")
                continue
            found.extend(what for pattern, what in _FORBIDDEN_SQL if pattern.search(sql))
            for concurrently, on in _SQL_INDEX.findall(sql):
                if on not in new and not concurrently:
                    found.append(f"SQL: index on existing table {on} without CONCURRENTLY")
    return sorted(set(found))


def _revisions() -> dict[str, list[str]]:
    return {os.path.basename(p): findings(open(p, encoding="utf-8").read())
            for p in sorted(glob.glob(os.path.join(VERSIONS, "*.py")))}


def test_every_revision_only_expands_or_has_a_reason():
    flagged = {(name, f) for name, found in _revisions().items() for f in found}
    assert sorted(flagged - set(ALLOWED)) == []


def test_every_allowance_is_still_needed():
    flagged = {(name, f) for name, found in _revisions().items() for f in found}
    assert sorted(set(ALLOWED) - flagged) == []


BAD = '''
def upgrade():
    op.drop_column("station", "name")
    op.alter_column("station", "kind", new_column_name="category")
    op.alter_column("station", "address", nullable=False)
    op.alter_column("station", "lat", type_=sa.Numeric())
    op.rename_table("rating", "ratings")
    op.add_column("station", sa.Column("floor", sa.Integer(), nullable=False))
    op.add_column("station", sa.Column("uid", sa.Text(), server_default=sa.text("gen_random_uuid()")))
    op.create_index("ix_station_kind", "station", ["kind"])
    with op.batch_alter_table("work_order") as batch:
        batch.drop_column("note")
        batch.add_column(sa.Column("level", sa.Integer(), nullable=False))
    op.execute("ALTER TABLE station DROP COLUMN operator")
    op.execute("CREATE INDEX ix_x ON station (name)")
    op.execute(f"ALTER TABLE {table} ADD x int")
'''

GOOD = '''
def upgrade():
    op.add_column("station", sa.Column("floor", sa.Integer(), nullable=True))
    op.add_column("station", sa.Column("level", sa.Integer(), nullable=False, server_default="0"))
    op.create_table("thing", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("n", sa.Text(), nullable=False))
    op.create_index("ix_thing_n", "thing", ["n"])
    with op.get_context().autocommit_block():
        op.create_index("ix_station_floor", "station", ["floor"], postgresql_concurrently=True)
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_y ON station (level)")
    with op.batch_alter_table("thing") as batch:
        batch.drop_column("n")


def downgrade():
    op.drop_column("station", "floor")
'''


def test_the_check_flags_each_contracting_operation():
    assert findings(BAD) == sorted([
        "NOT NULL column station.floor without a server default",
        "NOT NULL column work_order.level without a server default",
        "SQL built at run time",
        "SQL: drop",
        "SQL: index on existing table station without CONCURRENTLY",
        "column station.address made NOT NULL",
        "column station.kind renamed",
        "column station.lat given another type",
        "column station.uid with a server default that is not a constant",
        "drop_column on existing table station",
        "drop_column on existing table work_order",
        "index ix_station_kind on existing table station without CONCURRENTLY",
        "rename_table on existing table rating",
    ])


def test_the_check_lets_expanding_operations_through():
    assert findings(GOOD) == []
