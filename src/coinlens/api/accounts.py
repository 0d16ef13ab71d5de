"""Accounts: users with roles, argon2 password hashes, bearer tokens and browser sessions.

Secrets (tokens, session ids) are random and only their sha256 is stored, so a copy of the
database does not let anyone sign in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from coinlens.catalog import ROLES, ApiToken, Catalog, User, WebSession
from coinlens.catalog.models import utcnow

MIN_PASSWORD = 8
RANKS = {role: number for number, role in enumerate(ROLES)}  # viewer < reviewer < admin
_hasher = PasswordHasher()


class AccountError(ValueError):
    """A user name, password or role that cannot be used (says which)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: enough to authorise, detached from any database session."""

    user_id: int
    name: str
    role: str
    csrf_token: str | None = None  # browser sessions only

    def can(self, role: str) -> bool:
        return RANKS[self.role] >= RANKS[role]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_user(catalog: Catalog, name: str, password: str, role: str = "reviewer") -> Principal:
    name = name.strip()
    if not name or len(name) > 255 or any(c.isspace() for c in name):
        raise AccountError(f"user name {name!r}: 1-255 characters, no spaces")
    if role not in ROLES:
        raise AccountError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password for {name}: at least {MIN_PASSWORD} characters")
    with catalog.session() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise AccountError(f"user {name} already exists")
        user = User(name=name, role=role, password_hash=_hasher.hash(password))
        session.add(user)
        session.flush()
        return Principal(user.id, user.name, user.role)


def list_users(catalog: Catalog) -> list[dict[str, object]]:
    with catalog.reader() as session:
        return [
            {"id": u.id, "name": u.name, "role": u.role, "active": u.active}
            for u in session.scalars(select(User).order_by(User.name))
        ]


def check_password(catalog: Catalog, name: str, password: str) -> Principal | None:
    """The user if the password is right (and the account active), else None."""
    with catalog.reader() as session:
        user = session.scalar(select(User).where(User.name == name.strip()))
        if user is None or not user.active:
            _hasher.hash(password)  # same work either way: no timing hint that a name exists
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return Principal(user.id, user.name, user.role)


def create_token(
    catalog: Catalog, name: str, *, label: str | None = None, days: int | None = None
) -> str:
    """A new bearer token for user ``name``; shown once, stored only as a hash."""
    token = "cl_" + secrets.token_urlsafe(32)
    with catalog.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise AccountError(f"user {name} does not exist (coinlens user add {name})")
        expires = utcnow() + timedelta(days=days) if days else None
        session.add(
            ApiToken(user_id=user.id, token_hash=_digest(token), label=label, expires_at=expires)
        )
    return token


def token_principal(catalog: Catalog, token: str) -> Principal | None:
    with catalog.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
        if row is None or not row.user.active:
            return None
        if row.expires_at is not None and _aware(row.expires_at) <= utcnow():
            return None
        row.last_used_at = utcnow()
        return Principal(row.user.id, row.user.name, row.user.role)


def start_session(catalog: Catalog, principal: Principal, hours: int) -> str:
    """A new browser session for ``principal``; returns the cookie value."""
    secret = secrets.token_urlsafe(32)
    with catalog.session() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at < utcnow()))
        session.add(
            WebSession(
                user_id=principal.user_id,
                session_hash=_digest(secret),
                csrf_token=secrets.token_urlsafe(24),
                expires_at=utcnow() + timedelta(hours=hours),
            )
        )
    return secret


def session_principal(catalog: Catalog, secret: str) -> Principal | None:
    with catalog.reader() as session:
        row = session.scalar(select(WebSession).where(WebSession.session_hash == _digest(secret)))
        if row is None or _aware(row.expires_at) <= utcnow() or not row.user.active:
            return None
        return Principal(row.user.id, row.user.name, row.user.role, row.csrf_token)


def end_session(catalog: Catalog, secret: str) -> None:
    with catalog.session() as session:
        session.execute(delete(WebSession).where(WebSession.session_hash == _digest(secret)))


def _active_admins(session, other_than: int) -> int:
    return len(
        session.scalars(
            select(User.id).where(User.role == "admin", User.active, User.id != other_than)
        ).all()
    )


def change_user(
    catalog: Catalog, name: str, *, role: str | None = None, active: bool | None = None
) -> dict[str, object]:
    """Give user ``name`` another role, or disable (``active`` False) or enable them. A
    disabled user's sessions and tokens stop working at once; the last active admin cannot be
    demoted or disabled, so that someone can always manage the users."""
    if role is not None and role not in ROLES:
        raise AccountError(f"role {role!r}: use one of {', '.join(ROLES)}")
    with catalog.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise AccountError(f"user {name} does not exist")
        losing_admin = (
            user.role == "admin"
            and user.active
            and ((role is not None and role != "admin") or active is False)
        )
        if losing_admin and _active_admins(session, user.id) == 0:
            raise AccountError(f"{name} is the last active admin: make another admin first")
        if role is not None:
            user.role = role
        if active is not None:
            user.active = active
            if not active:
                session.execute(delete(WebSession).where(WebSession.user_id == user.id))
        return {"id": user.id, "name": user.name, "role": user.role, "active": user.active}


def list_tokens(catalog: Catalog) -> list[dict[str, object]]:
    """Every bearer token (never its secret): whose, its label, when made, used and ending."""
    with catalog.reader() as session:
        rows = session.execute(
            select(ApiToken, User.name)
            .join(User, User.id == ApiToken.user_id)
            .order_by(User.name, ApiToken.id)
        ).all()
        now = utcnow()
        return [
            {
                "id": token.id,
                "user": user,
                "label": token.label,
                "created_at": token.created_at,
                "last_used_at": token.last_used_at,
                "expires_at": token.expires_at,
                "expired": token.expires_at is not None and _aware(token.expires_at) <= now,
            }
            for token, user in rows
        ]


def revoke_token(catalog: Catalog, token_id: int) -> str:
    """Delete a bearer token: calls with it are refused from now on. Returns whose it was."""
    with catalog.session() as session:
        token = session.get(ApiToken, token_id)
        if token is None:
            raise AccountError(f"token {token_id} does not exist")
        owner = token.user.name
        session.delete(token)
        return owner
