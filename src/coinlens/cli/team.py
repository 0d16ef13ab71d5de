"""``coinlens serve``, ``user``, ``token``, ``audit`` and ``export``: the team's commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from coinlens.cli.common import HomeOption, app, fail, open_home, out
from coinlens.storage import StoreError

user_app = typer.Typer(help="Manage the people who review (admin work).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for /api/v1.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the review pages and the REST API (/api/v1, docs at /docs)."""
    import uvicorn

    from coinlens.api import create_app

    opened = open_home(home)
    if workers > 1:
        fail("--workers > 1: run several `coinlens serve` behind a proxy instead", 2)
    out.print(f"coinlens serving {opened.settings.home} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(create_app(opened), host=host, port=port, log_level="warning", access_log=False)


@app.command()
def audit(
    batch: Annotated[str, typer.Option("--batch", help="The batch to audit (its folder name).")],
    home: HomeOption = None,
    draw: Annotated[
        int | None,
        typer.Option(
            "--draw",
            min=1,
            max=1000,
            help="Draw this many more of its auto-accept candidates into the audit "
            "(default: none; the first draw of an empty audit takes the home's audit_sample).",
        ),
    ] = None,
    teach: Annotated[
        bool,
        typer.Option(
            "--teach",
            help="Draw where a review teaches the batch's calibration most (its least certain "
            "coins of each suggested type) instead of at random; not counted in the bound.",
        ),
    ] = False,
    reviewer: Annotated[
        str | None, typer.Option("--reviewer", help="Who draws, for the record (default: you).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit as JSON.")] = False,
) -> None:
    """A batch's shift and audit: draw a random sample of what it would auto-accept, and see
    whether the reviewed sample allows its auto-accept."""
    import getpass
    import json

    from coinlens.review import ReviewConflict
    from coinlens.review.audit import AuditError, audit_status, draw_sample

    with open_home(home) as opened:
        try:
            status = audit_status(opened.catalog, batch, opened.settings)
            if draw is not None or teach or (status["held"] and not status["drawn"]):
                draw_sample(
                    opened.catalog,
                    batch,
                    n=draw or opened.settings.audit_sample,
                    reviewer=reviewer or getpass.getuser(),
                    purpose="teach" if teach else "bound",
                )
                status = audit_status(opened.catalog, batch, opened.settings)
        except (AuditError, ReviewConflict) as exc:
            fail(str(exc), 2)
        url = opened.settings.public_url.rstrip("/")
    if as_json:
        print(json.dumps(status))
        return
    shift = status["shift"]
    out.print(f"batch {batch} (model version {status['model_version']}, {shift['n']} coins)")
    out.print(f"shift: {shift['reason'] or 'not measured'}")
    out.print(
        f"auto-accept candidates: {status['candidates']}; drawn {status['drawn']}, reviewed "
        f"{status['reviewed']}, wrong {status['wrong']}"
    )
    out.print(status["message"])
    out.print("auto-accept: " + ("HELD for the audit" if status["held"] else "allowed"))
    if status["sample"]:
        out.print(f"{len(status['sample'])} drawn coins to review: {url}/batches/{batch}/audit")


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Sign-in name.")],
    home: HomeOption = None,
    role: Annotated[str, typer.Option(help="viewer, reviewer or admin.")] = "reviewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a user; asks for the password (stored as an argon2 hash)."""
    from coinlens.api.accounts import AccountError, add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with open_home(home) as opened:
        try:
            user = add_user(opened.catalog, name, password, role)
        except AccountError as exc:
            fail(str(exc), 2)
    out.print(f"added {user.name} ({user.role})")


@user_app.command("list")
def user_list(home: HomeOption = None) -> None:
    """List users and their roles."""
    from coinlens.api.accounts import list_users

    with open_home(home) as opened:
        for user in list_users(opened.catalog):
            state = "" if user["active"] else " (disabled)"
            print(f"{user['name']}\t{user['role']}{state}")


@user_app.command("set")
def user_set(
    name: Annotated[str, typer.Argument(help="Sign-in name.")],
    home: HomeOption = None,
    role: Annotated[str | None, typer.Option(help="viewer, reviewer or admin.")] = None,
    active: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Let them sign in, or stop them at once."),
    ] = None,
) -> None:
    """Change a user's role, or disable or enable them (the last admin stays one)."""
    from coinlens.api.accounts import AccountError, change_user

    if role is None and active is None:
        fail("give --role, --enable or --disable", 2)
    with open_home(home) as opened:
        try:
            user = change_user(opened.catalog, name, role=role, active=active)
        except AccountError as exc:
            fail(str(exc), 2)
    state = "active" if user["active"] else "disabled"
    out.print(f"{user['name']}: {user['role']}, {state}")


@token_app.command("list")
def token_list(home: HomeOption = None) -> None:
    """List API tokens (never their secrets): id, user, label, last used, expiry."""
    from coinlens.api.accounts import list_tokens

    def day(moment) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"

    with open_home(home) as opened:
        for token in list_tokens(opened.catalog):
            ends = day(token["expires_at"]) + (" (expired)" if token["expired"] else "")
            label = token["label"] or "-"
            print(f"{token['id']}\t{token['user']}\t{label}\t{day(token['last_used_at'])}\t{ends}")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (coinlens token list).")],
    home: HomeOption = None,
) -> None:
    """Revoke an API token: calls with it are refused from now on."""
    from coinlens.api.accounts import AccountError, revoke_token

    with open_home(home) as opened:
        try:
            owner = revoke_token(opened.catalog, token_id)
        except AccountError as exc:
            fail(str(exc), 2)
    out.print(f"revoked token {token_id} of {owner}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="The user the token acts as.")],
    home: HomeOption = None,
    label: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    days: Annotated[
        int | None, typer.Option(min=1, help="Expire after this many days \\[default: never].")
    ] = None,
) -> None:
    """Create an API token (printed once; only its hash is kept)."""
    from coinlens.api.accounts import AccountError, create_token

    with open_home(home) as opened:
        try:
            token = create_token(opened.catalog, name, label=label, days=days)
        except AccountError as exc:
            fail(str(exc), 2)
    print(token)


@app.command()
def export(
    format: Annotated[str, typer.Option("--format", help="csv, jsonld or iiif.")],
    out_path: Annotated[
        str,
        typer.Option(
            "--out",
            help="File to write (a folder for iiif), or s3://bucket/prefix\\[/file].",
            show_default=False,
        ),
    ],
    home: HomeOption = None,
    status: Annotated[
        str, typer.Option(help="catalogued, backlog, in_review or all.")
    ] = "catalogued",
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Public address of the server \\[default: public_url]."),
    ] = None,
) -> None:
    """Export catalogue records: CSV, Nomisma JSON-LD, or IIIF Presentation 3 manifests."""
    from coinlens.export import EXPORT_STATUSES, FORMATS, write_export

    if format not in FORMATS:
        fail(f"--format {format!r}: use one of {', '.join(FORMATS)}", 2)
    if status not in EXPORT_STATUSES:
        fail(f"--status {status!r}: use one of {', '.join(EXPORT_STATUSES)}", 2)
    local = None if out_path.startswith("s3://") else Path(out_path)
    if local and format == "iiif" and local.exists() and not local.is_dir():
        fail(f"{out_path}: iiif writes a folder of manifests; this is a file", 2)
    if local and format != "iiif" and local.is_dir():
        fail(f"{out_path}: is a folder; give a file name", 2)
    with open_home(home) as opened:
        try:
            count = write_export(
                opened.catalog,
                format,
                out_path,
                base_url or opened.settings.public_url,
                status,
                opened.settings,
            )
        except (OSError, StoreError) as exc:
            fail(f"{out_path}: cannot write ({exc})")
        except ValueError as exc:
            fail(str(exc), 2)
    out.print(f"exported {count} specimens as {format} to {out_path}")
