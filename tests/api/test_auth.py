"""Who may do what: tokens, sessions, roles, CSRF."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from coinlens.catalog import ApiToken, Review, WebSession
from coinlens.catalog.models import utcnow
from reviewable import PASSWORD, sign_in


def test_reading_needs_a_token_or_a_session(site) -> None:
    response = site.client.get("/api/v1/specimens")
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]
    assert (
        site.client.get("/api/v1/specimens", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert site.client.get("/media/images/00/x.jpg").status_code == 401
    page = site.client.get("/queue", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=/queue")
    assert site.client.get("/api/v1/specimens", headers=site.auth("vic")).status_code == 200


def test_writing_needs_the_reviewer_role(site) -> None:
    backlog = site.client.get("/api/v1/queue", headers=site.auth("vic")).json()["items"][0]
    body = {"action": "accept", "version": backlog["version"]}
    refused = site.client.post(
        f"/api/v1/specimens/{backlog['id']}/review", json=body, headers=site.auth("vic")
    )
    assert refused.status_code == 403 and "needs reviewer" in refused.json()["error"]
    with site.home.catalog.reader() as session:
        assert session.query(Review).count() == 0
    accepted = site.client.post(
        f"/api/v1/specimens/{backlog['id']}/review", json=body, headers=site.auth("rita")
    )
    assert accepted.status_code == 200 and accepted.json()["status"] == "catalogued"


def test_managing_users_needs_admin(site) -> None:
    new = {"name": "sam", "password": "long enough pw", "role": "viewer"}
    assert site.client.post("/api/v1/users", json=new, headers=site.auth("rita")).status_code == 403
    created = site.client.post("/api/v1/users", json=new, headers=site.auth("ada"))
    assert created.status_code == 201 and created.json()["role"] == "viewer"
    names = [
        u["name"]
        for u in site.client.get("/api/v1/users", headers=site.auth("ada")).json()["items"]
    ]
    assert names == ["ada", "rita", "sam", "vic"]
    again = site.client.post("/api/v1/users", json=new, headers=site.auth("ada"))
    assert again.status_code == 400 and "already exists" in again.json()["error"]


def test_expired_token_and_expired_session_are_refused(site) -> None:
    with site.home.catalog.session() as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(minutes=1)))
    assert site.client.get("/api/v1/types", headers=site.auth("vic")).status_code == 401

    sign_in(site.client, "rita")
    assert site.client.get("/queue").status_code == 200
    with site.home.catalog.session() as session:
        session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = site.client.get("/queue", follow_redirects=False)
    assert expired.status_code == 303 and expired.headers["location"].startswith("/login")
    assert site.client.get("/api/v1/types").status_code == 401


def test_login_rejects_a_wrong_password_and_a_forged_form(site) -> None:
    page = site.client.get("/login")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    wrong = site.client.post(
        "/login",
        data={"name": "rita", "password": "guess", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert wrong.status_code == 303 and "error=" in wrong.headers["location"]
    site.client.cookies.clear()
    forged = site.client.post(
        "/login", data={"name": "rita", "password": PASSWORD, "csrf_token": "x"}
    )
    assert forged.status_code == 403
    assert "coinlens_session" not in site.client.cookies


def test_forms_and_session_api_calls_need_the_csrf_token(site) -> None:
    sign_in(site.client, "rita")
    item = site.client.get("/api/v1/queue").json()["items"][0]
    form = {"action": "skip", "version": str(item["version"]), "csrf_token": "forged"}
    assert site.client.post(f"/specimens/{item['id']}/review", data=form).status_code == 403
    body = {"action": "skip", "version": item["version"]}
    assert site.client.post(f"/api/v1/specimens/{item['id']}/review", json=body).status_code == 403
    page = site.client.get(f"/specimens/{item['id']}")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    headers = {"X-CSRF-Token": csrf}
    ok = site.client.post(f"/api/v1/specimens/{item['id']}/review", json=body, headers=headers)
    assert ok.status_code == 200
    with site.home.catalog.reader() as session:
        assert [r.action for r in session.query(Review)] == ["skip"]


def test_sign_out_ends_the_session(site) -> None:
    sign_in(site.client, "vic")
    page = site.client.get("/queue")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    cookie = site.client.cookies["coinlens_session"]
    assert (
        site.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code
        == 303
    )
    site.client.cookies.set("coinlens_session", cookie)
    assert site.client.get("/queue", follow_redirects=False).status_code == 303


def test_user_and_token_commands(cli, home) -> None:
    assert cli("init", "--home", home).exit_code == 0
    from typer.testing import CliRunner

    from coinlens.cli.app import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["user", "add", "kim", "--home", str(home), "--password-stdin"], input="short\n"
    )
    assert result.exit_code == 2 and "at least 8" in result.stderr
    result = runner.invoke(
        app, ["user", "add", "kim", "--home", str(home)], input="a good password\na good password\n"
    )
    assert result.exit_code == 0, result.stderr
    bad_role = runner.invoke(
        app,
        ["user", "add", "lee", "--role", "boss", "--home", str(home), "--password-stdin"],
        input="a good password\n",
    )
    assert bad_role.exit_code == 2 and "role" in bad_role.stderr
    token = cli("token", "create", "kim", "--home", home, "--days", "30")
    assert token.exit_code == 0 and token.stdout.startswith("cl_")
    missing = cli("token", "create", "nobody", "--home", home)
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    listed = cli("user", "list", "--home", home)
    assert "kim\treviewer" in listed.stdout
    # role and access change from the command line; a token is listed, then revoked
    demoted = cli("user", "set", "kim", "--role", "viewer", "--disable", "--home", home)
    assert demoted.exit_code == 0 and "viewer, disabled" in demoted.stdout
    assert "kim\tviewer (disabled)" in cli("user", "list", "--home", home).stdout
    nothing = cli("user", "set", "kim", "--home", home)
    assert nothing.exit_code == 2 and "--role" in nothing.stderr
    tokens = cli("token", "list", "--home", home).stdout.splitlines()
    assert len(tokens) == 1 and tokens[0].split("\t")[1] == "kim"
    assert token.stdout.strip() not in tokens[0]  # never the secret
    token_id = tokens[0].split("\t")[0]
    assert cli("token", "revoke", token_id, "--home", home).exit_code == 0
    assert cli("token", "list", "--home", home).stdout.strip() == ""
    assert cli("token", "revoke", token_id, "--home", home).exit_code == 2
