"""Accounts on both stores: organisations, staff users, passwords, tokens, Open311 keys, station
ownership, and the CLI commands that make them (the names deployments rely on)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from werkzeug.security import check_password_hash

from app.ops import accounts as accounts_module
from app.ops.accounts import DEFAULT_TIMEZONE, OPEN311_KEY_PREFIX, TOKEN_PREFIX, Accounts, Principal
from app.ops.categories import DEFAULT_CATEGORIES, category_to_dict
from app.dbtime import from_db
from app.ops.errors import Conflict, Invalid, NotFound
from tests.helpers import station

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"


@pytest.fixture
def accounts(store):
    return Accounts(store)


@pytest.fixture
def org(accounts):
    return accounts.create_organisation("hetang", "荷塘区环卫所")


def _one(store, sql, **params):
    with store.reading() as conn:
        return conn.execute(text(sql), params).first()


def _owners(store):
    with store.reading() as conn:
        rows = conn.execute(text(
            "SELECT s.source_id, o.organisation_id, o.manager_id FROM station_ops o"
            " JOIN station s ON s.id = o.station_id ORDER BY s.source_id"
        )).all()
    return [tuple(row) for row in rows]


# -- organisations ----------------------------------------------------------------

def test_organisation_is_created_and_read_back_by_id_and_code(accounts):
    made = accounts.create_organisation("lusong-ops", "芦淞区", timezone="Asia/Urumqi",
                                        webhook_url="https://hooks.example.cn/x", webhook_format="wecom")
    assert (made.code, made.name, made.timezone, made.webhook_url, made.webhook_format) == (
        "lusong-ops", "芦淞区", "Asia/Urumqi", "https://hooks.example.cn/x", "wecom")
    assert made.categories == DEFAULT_CATEGORIES  # NULL in the table: the defaults
    assert accounts.organisation(made.id) == made
    assert accounts.organisation_by_code("lusong-ops") == made
    assert accounts.organisation_by_code("nobody") is None
    assert accounts.organisation(made.id + 1000) is None


def test_organisation_defaults(accounts):
    made = accounts.create_organisation("tianyuan", "  天元区  ")
    assert (made.name, made.timezone, made.webhook_url, made.webhook_format) == ("天元区", DEFAULT_TIMEZONE, None, "json")


def test_duplicate_organisation_code_is_a_conflict(accounts, org, store):
    with pytest.raises(Conflict, match="hetang"):
        accounts.create_organisation("hetang", "another")
    assert _one(store, "SELECT count(*) FROM organisation WHERE code = 'hetang'")[0] == 1


@pytest.mark.parametrize("code", ["Hetang", "he tang", "he--tang", "-hetang", "hetang_", "荷塘", "", "a" * 41])
def test_organisation_code_must_be_lower_case_snake_or_kebab(accounts, code):
    with pytest.raises(Invalid, match="organisation code") as caught:
        accounts.create_organisation(code, "x")
    assert caught.value.field == "code"


@pytest.mark.parametrize("kwargs, field", [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"webhook_format": "slack"}, "webhook_format"),
    ({"webhook_url": "ftp://example.cn/hook"}, "webhook_url"),
    ({"webhook_url": "https:///no-host"}, "webhook_url"),
])
def test_organisation_settings_are_validated(accounts, store, kwargs, field):
    with pytest.raises(Invalid) as caught:
        accounts.create_organisation("shifeng", "石峰区", **kwargs)
    assert caught.value.field == field
    assert accounts.organisation_by_code("shifeng") is None


def test_categories_are_replaced_validated_and_reset(accounts, org):
    edited = [category_to_dict(DEFAULT_CATEGORIES[0]), category_to_dict(DEFAULT_CATEGORIES[2])]
    edited[0]["name"]["en"] = "  Very dirty  "
    changed = accounts.set_categories("hetang", edited)
    assert [c.code for c in changed.categories] == ["dirty", "no_water"]
    assert changed.categories[0].names["en"] == "Very dirty"
    assert accounts.organisation_by_code("hetang").categories == changed.categories

    bad = [dict(edited[0], priority="whenever")]
    with pytest.raises(Invalid, match="priority 'whenever'") as caught:
        accounts.set_categories("hetang", bad)
    assert caught.value.field == "categories"
    assert accounts.organisation_by_code("hetang").categories == changed.categories  # unchanged

    assert accounts.set_categories("hetang", None).categories == DEFAULT_CATEGORIES
    with pytest.raises(NotFound):
        accounts.set_categories("nobody", None)


# -- users and passwords -------------------------------------------------------------

def test_user_is_created_with_a_normalised_email_and_a_scrypt_hash(accounts, org, store):
    made = accounts.create_user("  Zhang.Wei@Example.CN ", PASSWORD, "station_manager", org_code="hetang")
    assert made == Principal(made.id, "zhang.wei@example.cn", "station_manager", org.id, None)
    row = _one(store, "SELECT email, password_hash FROM staff_user WHERE id = :id", id=made.id)
    assert row.email == "zhang.wei@example.cn"
    assert PASSWORD not in row.password_hash and row.password_hash.startswith("scrypt:")
    assert check_password_hash(row.password_hash, PASSWORD)
    assert not check_password_hash(row.password_hash, PASSWORD + "!")
    assert accounts.user(made.id) == made
    assert accounts.user_by_email("ZHANG.WEI@example.cn") == made


def test_admin_has_no_organisation(accounts, org):
    admin = accounts.create_user("root@example.cn", PASSWORD, "admin")
    assert admin.organisation_id is None
    with pytest.raises(Invalid, match="admin belongs to no organisation") as caught:
        accounts.create_user("root2@example.cn", PASSWORD, "admin", org_code="hetang")
    assert caught.value.field == "org"


@pytest.mark.parametrize("role", ["org_manager", "station_manager", "worker"])
def test_every_other_role_needs_an_organisation(accounts, role):
    with pytest.raises(Invalid, match=f"a {role} must belong to an organisation"):
        accounts.create_user("li@example.cn", PASSWORD, role)
    assert accounts.user_by_email("li@example.cn") is None


@pytest.mark.parametrize("email, password, role, org_code, error, field", [
    ("li@example.cn", PASSWORD, "janitor", "hetang", Invalid, "role"),
    ("li@example.cn", PASSWORD, "worker", "nobody", NotFound, "org"),
    ("li@example.cn", "short", "worker", "hetang", Invalid, "password"),
    ("li@example.cn", "", "worker", "hetang", Invalid, "password"),
    ("not-an-address", PASSWORD, "worker", "hetang", Invalid, "email"),
    ("li@example", PASSWORD, "worker", "hetang", Invalid, "email"),
    ("a" * 250 + "@example.cn", PASSWORD, "worker", "hetang", Invalid, "email"),
])
def test_bad_user_input_is_refused_with_its_field(accounts, org, email, password, role, org_code, error, field):
    with pytest.raises(error) as caught:
        accounts.create_user(email, password, role, org_code=org_code)
    assert caught.value.field == field


def test_duplicate_email_in_any_case_is_a_conflict(accounts, org):
    accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    with pytest.raises(Conflict, match="wang@example.cn"):
        accounts.create_user("WANG@example.cn", PASSWORD, "org_manager", org_code="hetang")


def test_authenticate(accounts, org):
    made = accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    assert accounts.authenticate(" Wang@Example.cn", PASSWORD) == made
    assert accounts.authenticate("wang@example.cn", PASSWORD + "x") is None
    assert accounts.authenticate("wang@example.cn", "") is None
    assert accounts.authenticate("nobody@example.cn", PASSWORD) is None
    assert accounts.authenticate("not an address", PASSWORD) is None
    assert accounts.authenticate(None, None) is None


def test_unknown_email_still_costs_one_password_check(accounts, org, monkeypatch):
    """No timing oracle: an unknown address is checked against a dummy hash, a known one against its own."""
    checked = []
    real = accounts_module.check_password_hash
    monkeypatch.setattr(accounts_module, "check_password_hash", lambda h, p: checked.append(h) or real(h, p))
    accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    assert accounts.authenticate("nobody@example.cn", PASSWORD) is None
    assert accounts.authenticate("not an address", PASSWORD) is None
    assert accounts.authenticate("wang@example.cn", "wrong password") is None
    assert len(checked) == 3
    assert checked[0] == checked[1] == accounts_module._dummy_hash()
    assert checked[2] != checked[0] and checked[2].startswith("scrypt:")


def test_inactive_user_cannot_log_in_and_is_not_loaded(accounts, org):
    made = accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    token = accounts.create_token("wang@example.cn")
    accounts.set_active("wang@example.cn", False)
    assert accounts.authenticate("wang@example.cn", PASSWORD) is None
    assert accounts.user(made.id) is None and accounts.user_by_email("wang@example.cn") is None
    assert accounts.principal_for_token(token, NOW) is None
    accounts.set_active("wang@example.cn", True)
    assert accounts.authenticate("wang@example.cn", PASSWORD) == made
    assert accounts.principal_for_token(token, NOW) == made


def test_set_password(accounts, org):
    accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    accounts.set_password("wang@example.cn", "a new long password")
    assert accounts.authenticate("wang@example.cn", PASSWORD) is None
    assert accounts.authenticate("wang@example.cn", "a new long password") is not None
    with pytest.raises(Invalid):
        accounts.set_password("wang@example.cn", "short")
    with pytest.raises(NotFound):
        accounts.set_password("nobody@example.cn", "a new long password")


def test_staff_of_lists_an_organisations_active_staff_by_role(accounts, org):
    other = accounts.create_organisation("lusong", "芦淞区")
    boss = accounts.create_user("boss@example.cn", PASSWORD, "org_manager", org_code="hetang")
    worker = accounts.create_user("w1@example.cn", PASSWORD, "worker", org_code="hetang")
    accounts.create_user("gone@example.cn", PASSWORD, "worker", org_code="hetang")
    accounts.set_active("gone@example.cn", False)
    accounts.create_user("w2@example.cn", PASSWORD, "worker", org_code="lusong")
    accounts.create_user("root@example.cn", PASSWORD, "admin")
    assert accounts.staff_of(org.id) == [boss, worker]
    assert accounts.staff_of(org.id, roles=("org_manager",)) == [boss]
    assert [p.email for p in accounts.staff_of(other.id)] == ["w2@example.cn"]
    with pytest.raises(Invalid):
        accounts.staff_of(org.id, roles=("janitor",))


# -- tokens and keys ----------------------------------------------------------------------

def test_token_is_stored_only_as_its_sha256_and_finds_its_user(accounts, org, store):
    made = accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    token = accounts.create_token("Wang@example.cn")
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    row = _one(store, "SELECT token_hash, user_id, expires_at, revoked_at, last_used_at FROM api_token")
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in tuple(str(v) for v in row)
    assert (row.user_id, row.expires_at, row.revoked_at, row.last_used_at) == (made.id, None, None, None)
    assert accounts.principal_for_token(token, NOW) == made
    assert from_db(_one(store, "SELECT last_used_at FROM api_token").last_used_at) == NOW
    assert accounts.create_token("wang@example.cn") != token  # each one new


@pytest.mark.parametrize("bad", ["", "Bearer", TOKEN_PREFIX, TOKEN_PREFIX + "x" * 43, "yzk_" + "x" * 43,
                                 TOKEN_PREFIX + "x" * 500, None, 42])
def test_unknown_or_malformed_tokens_find_no_one(accounts, org, bad):
    accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    accounts.create_token("wang@example.cn")
    assert accounts.principal_for_token(bad, NOW) is None
    assert accounts.revoke_token(bad) is False


def test_revoked_token_is_refused(accounts, org):
    accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    token, other = accounts.create_token("wang@example.cn"), accounts.create_token("wang@example.cn")
    assert accounts.revoke_token(token) is True
    assert accounts.principal_for_token(token, NOW) is None
    assert accounts.revoke_token(token) is False  # already revoked
    assert accounts.principal_for_token(other, NOW) is not None  # only that one


def test_expired_token_is_refused(accounts, org):
    accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    token = accounts.create_token("wang@example.cn", expires_at=NOW + timedelta(hours=1))
    assert accounts.principal_for_token(token, NOW + timedelta(minutes=59)) is not None
    assert accounts.principal_for_token(token, NOW + timedelta(hours=1)) is None
    assert accounts.principal_for_token(token, NOW + timedelta(days=3)) is None
    with pytest.raises(Invalid):
        accounts.create_token("wang@example.cn", expires_at=datetime(2027, 1, 1))  # no zone


def test_token_needs_an_active_user(accounts, org):
    with pytest.raises(NotFound, match="nobody@example.cn"):
        accounts.create_token("nobody@example.cn")
    accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    accounts.set_active("wang@example.cn", False)
    with pytest.raises(NotFound):
        accounts.create_token("wang@example.cn")


def test_last_use_is_written_at_most_once_a_minute(accounts, org, store):
    accounts.create_user("wang@example.cn", PASSWORD, "worker", org_code="hetang")
    token = accounts.create_token("wang@example.cn")

    def last_used():
        return from_db(_one(store, "SELECT last_used_at FROM api_token").last_used_at)

    accounts.principal_for_token(token, NOW)
    accounts.principal_for_token(token, NOW + timedelta(seconds=59))
    assert last_used() == NOW
    accounts.principal_for_token(token, NOW + timedelta(seconds=61))
    assert last_used() == NOW + timedelta(seconds=61)


def test_open311_keys_are_stored_hashed_and_revocable(accounts, store):
    key = accounts.create_open311_key("株洲12345热线")
    other = accounts.create_open311_key("FixMyStreet mobile")
    assert key.startswith(OPEN311_KEY_PREFIX)
    row = _one(store, "SELECT id, name, key_hash FROM open311_key WHERE name = '株洲12345热线'")
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert accounts.open311_key_id(key) == row.id
    assert accounts.open311_key_id(TOKEN_PREFIX + key[4:]) is None  # a staff token is no api_key
    assert accounts.open311_key_id("yzk_unknown") is None
    assert accounts.revoke_open311_key(key) is True
    assert accounts.open311_key_id(key) is None
    assert accounts.revoke_open311_key(key) is False
    assert accounts.open311_key_id(other) is not None
    with pytest.raises(Invalid):
        accounts.create_open311_key("   ")


# -- station ownership ----------------------------------------------------------------------

@pytest.fixture
def stations(store):
    store.upsert([station("a1", 27.80, 113.10, source="hetang-2026"), station("a2", 27.81, 113.11, source="hetang-2026"),
                  station("a3", 27.82, 113.12, source="hetang-2026"), station("b1", 27.90, 113.20, source="lusong")])
    with store.reading() as conn:
        return dict(conn.execute(text("SELECT source_id, id FROM station")).all())


def test_assign_every_station_of_a_source(accounts, org, stations, store):
    assert accounts.assign_stations("hetang", source="hetang-2026") == 3
    assert _owners(store) == [("a1", org.id, None), ("a2", org.id, None), ("a3", org.id, None)]
    assert accounts.station_owner(stations["a2"]) == (org.id, None)
    assert accounts.station_owner(stations["b1"]) == (None, None)


def test_assign_by_source_ids_with_a_manager(accounts, org, stations, store):
    manager = accounts.create_user("zhanzhang@example.cn", PASSWORD, "station_manager", org_code="hetang")
    assert accounts.assign_stations("hetang", source="hetang-2026", source_ids=["a1", "a3", "a1"],
                                    manager_email="ZhanZhang@example.cn") == 2
    assert _owners(store) == [("a1", org.id, manager.id), ("a3", org.id, manager.id)]
    # Without --source an id may name a station of any source, if only one.
    assert accounts.assign_stations("hetang", source_ids=["b1"]) == 1
    assert accounts.station_owner(stations["b1"]) == (org.id, None)


def test_unknown_source_ids_are_listed_and_nothing_is_written(accounts, org, stations, store):
    with pytest.raises(Invalid, match="2 unknown source id.*a9, zz") as caught:
        accounts.assign_stations("hetang", source="hetang-2026", source_ids=["a1", "a9", "zz"])
    assert caught.value.field == "source_ids"
    with pytest.raises(Invalid, match="b1"):  # exists, but in another source
        accounts.assign_stations("hetang", source="hetang-2026", source_ids=["a1", "b1"])
    with pytest.raises(Invalid, match="no station has source 'nowhere'"):
        accounts.assign_stations("hetang", source="nowhere")
    assert _owners(store) == []


def test_assign_needs_stations_and_a_known_organisation(accounts, org, stations, store):
    with pytest.raises(Invalid, match="name the stations"):
        accounts.assign_stations("hetang")
    with pytest.raises(NotFound, match="nobody"):
        accounts.assign_stations("nobody", source="hetang-2026")
    assert _owners(store) == []


def test_same_source_id_in_two_sources_needs_a_source(accounts, org, stations, store):
    store.upsert([station("a1", 27.95, 113.25, source="lusong")])
    with pytest.raises(Invalid, match="a1 exist in several sources"):
        accounts.assign_stations("hetang", source_ids=["a1"])
    assert _owners(store) == []


def test_manager_must_run_stations_of_that_organisation(accounts, org, stations, store):
    accounts.create_organisation("lusong", "芦淞区")
    accounts.create_user("worker@example.cn", PASSWORD, "worker", org_code="hetang")
    accounts.create_user("elsewhere@example.cn", PASSWORD, "station_manager", org_code="lusong")
    boss = accounts.create_user("boss@example.cn", PASSWORD, "org_manager", org_code="hetang")
    for email in ("worker@example.cn", "elsewhere@example.cn"):
        with pytest.raises(Invalid, match="a manager must be a station_manager or org_manager of hetang"):
            accounts.assign_stations("hetang", source="hetang-2026", manager_email=email)
    with pytest.raises(NotFound):
        accounts.assign_stations("hetang", source="hetang-2026", manager_email="nobody@example.cn")
    assert _owners(store) == []
    assert accounts.assign_stations("hetang", source_ids=["a1"], manager_email="boss@example.cn") == 1
    assert accounts.station_owner(stations["a1"]) == (org.id, boss.id)


def test_reassigning_keeps_the_manager_within_an_organisation_and_drops_it_across(accounts, org, stations):
    other = accounts.create_organisation("lusong", "芦淞区")
    manager = accounts.create_user("zhanzhang@example.cn", PASSWORD, "station_manager", org_code="hetang")
    accounts.assign_stations("hetang", source_ids=["a1", "a2"], manager_email="zhanzhang@example.cn")
    accounts.assign_stations("hetang", source="hetang-2026")  # no manager named: a1, a2 keep theirs
    assert [accounts.station_owner(stations[s]) for s in ("a1", "a2", "a3")] == [
        (org.id, manager.id), (org.id, manager.id), (org.id, None)]
    accounts.assign_stations("lusong", source_ids=["a1"])
    assert accounts.station_owner(stations["a1"]) == (other.id, None)


# -- CLI ----------------------------------------------------------------------------------

def _last_line(output: str) -> str:
    return output.rstrip("\n").split("\n")[-1]


def test_cli_orgs_create(cli, store):
    result = cli.invoke(args=["orgs", "create", "hetang", "--name", "荷塘区环卫所", "--webhook-url",
                              "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x", "--webhook-format", "wecom"])
    assert result.exit_code == 0, result.output
    made = Accounts(store).organisation_by_code("hetang")
    assert (made.name, made.webhook_format) == ("荷塘区环卫所", "wecom")
    again = cli.invoke(args=["orgs", "create", "hetang", "--name", "x"])
    assert again.exit_code != 0 and "organisation 'hetang' already exists" in again.output
    bad = cli.invoke(args=["orgs", "create", "Bad Code", "--name", "x"])
    assert bad.exit_code != 0 and "organisation code" in bad.output


def test_cli_users_create_reads_the_password_from_stdin(cli, store):
    accounts = Accounts(store)
    accounts.create_organisation("hetang", "荷塘区")
    result = cli.invoke(args=["users", "create", "Li@Example.cn", "--role", "station_manager", "--org", "hetang",
                              "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    user = accounts.authenticate("li@example.cn", PASSWORD)
    assert (user.role, user.organisation_id) == ("station_manager", accounts.organisation_by_code("hetang").id)
    admin = cli.invoke(args=["users", "create", "root@example.cn", "--role", "admin", "--password-stdin"],
                       input="  spaces kept  ")
    assert admin.exit_code == 0, admin.output
    assert accounts.authenticate("root@example.cn", "  spaces kept  ") is not None


@pytest.mark.parametrize("args, stdin, message", [
    (["--role", "worker", "--org", "hetang"], PASSWORD, "--password-stdin"),
    (["--role", "worker", "--org", "hetang", "--password-stdin"], "", "no password"),
    (["--role", "worker", "--org", "hetang", "--password-stdin"], "\n", "no password"),
    (["--role", "worker", "--org", "hetang", "--password-stdin"], "short\n", "at least 10 characters"),
    (["--role", "worker", "--org", "hetang", "--password-stdin"], "line one long\nline two\n", "single line"),
    (["--role", "worker", "--password-stdin"], PASSWORD, "must belong to an organisation"),
    (["--role", "admin", "--org", "hetang", "--password-stdin"], PASSWORD, "no organisation"),
    (["--role", "worker", "--org", "nobody", "--password-stdin"], PASSWORD, "no organisation with code 'nobody'"),
    (["--role", "janitor", "--org", "hetang", "--password-stdin"], PASSWORD, "janitor"),
])
def test_cli_users_create_refuses(cli, store, args, stdin, message):
    Accounts(store).create_organisation("hetang", "荷塘区")
    result = cli.invoke(args=["users", "create", "li@example.cn", *args], input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert Accounts(store).user_by_email("li@example.cn") is None


def test_cli_stations_assign(cli, store, stations):
    accounts = Accounts(store)
    org = accounts.create_organisation("hetang", "荷塘区")
    manager = accounts.create_user("zz@example.cn", PASSWORD, "station_manager", org_code="hetang")
    by_source = cli.invoke(args=["stations", "assign", "--org", "hetang", "--source", "hetang-2026"])
    assert by_source.exit_code == 0, by_source.output
    assert "Assigned 3 station(s) to hetang" in by_source.output
    by_ids = cli.invoke(args=["stations", "assign", "--org", "hetang", "--source", "hetang-2026",
                              "--manager", "zz@example.cn", "a2"])
    assert by_ids.exit_code == 0, by_ids.output
    assert _owners(store) == [("a1", org.id, None), ("a2", org.id, manager.id), ("a3", org.id, None)]
    unknown = cli.invoke(args=["stations", "assign", "--org", "hetang", "--manager", "zz@example.cn", "b1", "x7"])
    assert unknown.exit_code != 0 and "unknown source id(s): x7" in unknown.output
    assert accounts.station_owner(stations["b1"]) == (None, None)
    neither = cli.invoke(args=["stations", "assign", "--org", "hetang"])
    assert neither.exit_code != 0 and "name the stations" in neither.output


def test_cli_tokens_create_prints_the_token_last_and_it_authenticates(cli, store):
    accounts = Accounts(store)
    accounts.create_organisation("hetang", "荷塘区")
    made = accounts.create_user("li@example.cn", PASSWORD, "worker", org_code="hetang")
    result = cli.invoke(args=["tokens", "create", "li@example.cn"])
    assert result.exit_code == 0, result.output
    token = _last_line(result.output)
    assert token == result.stdout.strip()  # stdout holds the token alone
    assert accounts.principal_for_token(token, NOW) == made

    expiring = cli.invoke(args=["tokens", "create", "li@example.cn", "--expires-days", "7"])
    assert expiring.exit_code == 0, expiring.output
    short_lived = _last_line(expiring.output)
    assert accounts.principal_for_token(short_lived, datetime.now(timezone.utc) + timedelta(days=6)) == made
    assert accounts.principal_for_token(short_lived, datetime.now(timezone.utc) + timedelta(days=8)) is None

    revoked = cli.invoke(args=["tokens", "revoke", token])
    assert revoked.exit_code == 0, revoked.output
    assert accounts.principal_for_token(token, NOW) is None
    again = cli.invoke(args=["tokens", "revoke", token])
    assert again.exit_code != 0 and "no such live token" in again.output
    nobody = cli.invoke(args=["tokens", "create", "nobody@example.cn"])
    assert nobody.exit_code != 0 and "nobody@example.cn" in nobody.output


def test_cli_open311_keys_create_prints_the_key_last(cli, store):
    result = cli.invoke(args=["open311", "keys", "create", "株洲12345热线"])
    assert result.exit_code == 0, result.output
    key = _last_line(result.output)
    assert key == result.stdout.strip() and key.startswith(OPEN311_KEY_PREFIX)
    key_id = Accounts(store).open311_key_id(key)
    assert _one(store, "SELECT name FROM open311_key WHERE id = :id", id=key_id).name == "株洲12345热线"
    revoked = cli.invoke(args=["open311", "keys", "revoke", key])
    assert revoked.exit_code == 0 and Accounts(store).open311_key_id(key) is None


def test_cli_users_deactivate_and_set_password(cli, store):
    accounts = Accounts(store)
    accounts.create_organisation("hetang", "荷塘区")
    accounts.create_user("li@example.cn", PASSWORD, "worker", org_code="hetang")
    changed = cli.invoke(args=["users", "set-password", "li@example.cn", "--password-stdin"],
                         input="another long one\n")
    assert changed.exit_code == 0, changed.output
    assert accounts.authenticate("li@example.cn", "another long one") is not None
    gone = cli.invoke(args=["users", "deactivate", "LI@example.cn"])
    assert gone.exit_code == 0, gone.output
    assert accounts.authenticate("li@example.cn", "another long one") is None
    missing = cli.invoke(args=["users", "deactivate", "nobody@example.cn"])
    assert missing.exit_code != 0 and "nobody@example.cn" in missing.output
