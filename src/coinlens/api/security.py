"""Who is asking, and may they: bearer tokens and session cookies, roles, CSRF.

Reading needs a login or a token; writing needs the reviewer role; managing users needs admin.
Browser forms carry the session's CSRF token; API calls authenticated by the session cookie (the
review page's own scripts) send it in ``X-CSRF-Token``; bearer-token calls need none, since a
browser never adds that header by itself.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from coinlens.api.accounts import Principal, session_principal, token_principal

SESSION_COOKIE = "coinlens_session"
LOGIN_CSRF_COOKIE = "coinlens_login_csrf"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class LoginRequired(Exception):
    """A page needs a signed-in user: the app redirects to the login page."""


def request_principal(request: Request) -> Principal | None:
    catalog = request.app.state.home.catalog
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        principal = token_principal(catalog, token.strip())
        request.state.via = "token"
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        request.state.via = "session"
        return session_principal(catalog, cookie)
    return None


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def api_user(role: str):
    """A dependency for /api/v1: 401 without valid credentials, 403 without ``role``."""

    def check(request: Request) -> Principal:
        principal = request_principal(request)
        if principal is None:
            raise HTTPException(
                401,
                "sign in or send 'Authorization: Bearer <token>' (coinlens token create NAME)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.can(role):
            raise HTTPException(403, f"{principal.name} is a {principal.role}; this needs {role}")
        if (
            request.method in UNSAFE
            and getattr(request.state, "via", "") == "session"
            and not same(request.headers.get("x-csrf-token"), principal.csrf_token)
        ):
            raise HTTPException(403, "missing or wrong X-CSRF-Token for a signed-in session")
        return principal

    return check


def page_user(role: str = "viewer"):
    """A dependency for HTML pages: the login page without a session, 403 without ``role``."""

    def check(request: Request) -> Principal:
        principal = None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = session_principal(request.app.state.home.catalog, cookie)
        if principal is None:
            raise LoginRequired()
        if not principal.can(role):
            raise HTTPException(403, f"{principal.name} is a {principal.role}; this needs {role}")
        return principal

    return check


def check_form_csrf(principal: Principal, submitted: str | None) -> None:
    if not same(submitted, principal.csrf_token):
        raise HTTPException(403, "the form has expired or did not come from coinlens; reload it")


Reader = Annotated[Principal, Depends(api_user("viewer"))]
Reviewer = Annotated[Principal, Depends(api_user("reviewer"))]
Admin = Annotated[Principal, Depends(api_user("admin"))]
PageReader = Annotated[Principal, Depends(page_user("viewer"))]
PageReviewer = Annotated[Principal, Depends(page_user("reviewer"))]
PageAdmin = Annotated[Principal, Depends(page_user("admin"))]
