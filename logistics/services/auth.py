"""Use cases of authentication: users, logins, tokens, and finding the store a request acts on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from logistics.clock import utcnow
from logistics.db import Base, UnitOfWork, is_unavailable, rowcount
from logistics.domain.errors import Conflict, Invalid, NotFound, Unauthorized
from logistics.domain.policy import Grant, Role
from logistics.models.auth import AccessEpoch, ApiToken, RoleGrant, User
from logistics.models.catalog import StorageUnit, Store
from logistics.services import secrets
from logistics.services.lookup import get_or_404

DEFAULT_TOKEN_TTL_S = 12 * 3600
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

RoleSpec = str | tuple[str, int | str | None]


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a request comes from: the user, the grants they hold, and the token they used."""

    user_id: int
    username: str
    grants: tuple[Grant, ...]
    token_id: int | None = None
    expires_at: dt.datetime | None = None


def _store_by_ref(session: Session, ref: int | str) -> Store:
    column = Store.id if isinstance(ref, int) else Store.code
    store = session.scalars(select(Store).where(column == ref)).one_or_none()
    if store is None:
        raise NotFound(f"no store {ref!r}", field="roles")
    return store


def _parse_role(spec: RoleSpec) -> tuple[Role, int | str | None]:
    """Read "role", "role:STORE-CODE" or (role, store id or code)."""
    if isinstance(spec, str):
        role, _, store = spec.partition(":")
        ref: int | str | None = store or None
    else:
        role, ref = spec
    try:
        return Role(role), ref
    except ValueError:
        choices = [r.value for r in Role]
        raise Invalid(f"unknown role {role!r}; one of {choices}", field="roles") from None


def _grants(session: Session, roles: Iterable[RoleSpec]) -> list[RoleGrant]:
    grants = []
    for spec in roles:
        role, ref = _parse_role(spec)
        if role is Role.ADMIN and ref is not None:
            raise Invalid("an admin acts over the whole network; give no store", field="roles")
        store_id = _store_by_ref(session, ref).id if ref is not None else None
        grants.append(RoleGrant(role=role.value, store_id=store_id))
    return grants


def create_user(
    uow: UnitOfWork,
    *,
    username: str,
    password: str | None,
    roles: Iterable[RoleSpec],
    now: dt.datetime | None = None,
) -> User:
    """Create a user with roles ("admin", "district_officer:DVS-PUNE" or (role, store id)).

    The caller commits.

    `password` None makes a service account that logs in only with tokens issued to it.
    """
    if not USERNAME_RE.match(username):
        raise Invalid("a username is 1-64 letters, digits or . _ @ -", field="username")
    if uow.session.scalars(select(User.id).where(User.username == username)).first() is not None:
        raise Conflict(f"user {username!r} exists", field="username")
    user = User(
        username=username,
        created_at=now or utcnow(),
        password_hash=secrets.hash_password(password) if password is not None else None,
    )
    user.grants = _grants(uow.session, roles)
    uow.session.add(user)
    uow.session.flush()
    return user


def _user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        raise NotFound(f"no user {username!r}", field="username")
    return user


def set_password(uow: UnitOfWork, *, username: str, password: str) -> None:
    """Give a user a new password; the caller commits."""
    _user(uow.session, username).password_hash = secrets.hash_password(password)
    bump_access_epoch(uow.session)
    uow.session.flush()


def bump_access_epoch(session: Session) -> None:
    """Raise the access epoch in the caller's transaction: every worker drops its cached tokens.

    Called by every change that can take access away (revocation, disabling, new roles, new
    password), so it commits or rolls back with that change.
    """
    raised = session.execute(
        update(AccessEpoch).where(AccessEpoch.id == 1).values(value=AccessEpoch.value + 1)
    )
    if not rowcount(raised):  # a schema made by create_all (tests) has no row yet
        session.add(AccessEpoch(id=1, value=1))
        session.flush()


# Built once on the table (Core): every authenticated request runs it, and building and running
# it through the ORM cost twice the database's answer.
_EPOCH = select(AccessEpoch.__table__.c.value).where(AccessEpoch.__table__.c.id == 1)


def access_epoch(session: Session) -> int:
    """The current access epoch (one primary-key read, made on every authenticated request)."""
    return session.scalar(_EPOCH) or 0


def update_user(
    uow: UnitOfWork,
    *,
    username: str,
    active: bool | None = None,
    password: str | None = None,
    roles: Iterable[RoleSpec] | None = None,
    now: dt.datetime | None = None,
) -> User:
    """Enable or disable a user (disabling revokes every token), set a password or replace the
    roles (effective on the user's next request); the caller commits."""
    user = _user(uow.session, username)
    if password is not None:
        user.password_hash = secrets.hash_password(password)
    if roles is not None:
        user.grants = _grants(uow.session, roles)
    if active is not None:
        user.active = active
        if not active:
            _revoke_all(uow.session, user.id, now or utcnow())
    bump_access_epoch(uow.session)
    uow.session.flush()
    return user


def _revoke_all(session: Session, user_id: int, now: dt.datetime) -> None:
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    )
    for token in tokens:
        token.revoked_at = now


def issue_token(
    uow: UnitOfWork,
    *,
    username: str,
    ttl_s: int = DEFAULT_TOKEN_TTL_S,
    now: dt.datetime | None = None,
) -> str:
    """Issue a bearer token to a user and return it (only its hash is kept); the caller commits."""
    return issue_token_row(uow, username=username, ttl_s=ttl_s, now=now)[0]


def issue_token_row(
    uow: UnitOfWork,
    *,
    username: str,
    ttl_s: int = DEFAULT_TOKEN_TTL_S,
    now: dt.datetime | None = None,
) -> tuple[str, ApiToken]:
    """Issue a bearer token; return it with its stored row (id, expiry)."""
    user = _user(uow.session, username)
    if not user.active:
        raise Invalid(f"user {username!r} is disabled", field="username")
    return _new_token(uow, user, ttl_s, now or utcnow())


def _new_token(uow: UnitOfWork, user: User, ttl_s: int, now: dt.datetime) -> tuple[str, ApiToken]:
    if ttl_s <= 0:
        raise Invalid("a token lives a positive number of seconds", field="ttl_s")
    token = secrets.new_token()
    row = ApiToken(
        user_id=user.id,
        token_hash=secrets.token_hash(token),
        created_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_s),
    )
    uow.session.add(row)
    uow.session.flush()
    return token, row


def login(
    uow: UnitOfWork, *, username: str, password: str, ttl_s: int, now: dt.datetime
) -> tuple[str, ApiToken]:
    """Check a person's password and issue a token; the same refusal for every way it fails."""
    user = uow.session.scalars(select(User).where(User.username == username)).one_or_none()
    stored = user.password_hash if user is not None and user.active else None
    # Verify against a stand-in hash when there is no usable user, so the answer takes as long
    # and a caller cannot tell taken usernames by the time it takes.
    ok = secrets.verify_password(stored or secrets.stand_in_hash(), password) and stored is not None
    if not ok or user is None:
        raise Unauthorized("wrong username or password")
    return _new_token(uow, user, ttl_s, now)


def revoke_token(uow: UnitOfWork, *, token_id: int, now: dt.datetime) -> ApiToken:
    """Revoke a token by its id (idempotent); the caller commits."""
    row = get_or_404(uow, ApiToken, token_id, f"no token {token_id}", field="token_id")
    row.revoked_at = row.revoked_at or now
    bump_access_epoch(uow.session)
    uow.session.flush()
    return row


def tokens_of(uow: UnitOfWork, *, username: str) -> list[ApiToken]:
    """The tokens of a user, newest first (hashes only)."""
    user = _user(uow.session, username)
    return list(
        uow.session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    )


def list_users(uow: UnitOfWork) -> list[User]:
    """Every user, by name."""
    return list(uow.session.scalars(select(User).order_by(User.username)))


def get_user(uow: UnitOfWork, *, username: str) -> User:
    """One user by name."""
    return _user(uow.session, username)


def authenticate(uow: UnitOfWork, token: str, now: dt.datetime) -> Principal:
    """Find who holds this bearer token; refuse unknown, expired and revoked ones (one query)."""
    rows = uow.session.execute(
        select(
            ApiToken.id,
            ApiToken.expires_at,
            ApiToken.revoked_at,
            User.id,
            User.username,
            User.active,
            RoleGrant.role,
            Store.path,
        )
        .join(User, User.id == ApiToken.user_id)
        .outerjoin(RoleGrant, RoleGrant.user_id == User.id)
        .outerjoin(Store, Store.id == RoleGrant.store_id)
        .where(ApiToken.token_hash == secrets.token_hash(token))
    ).all()
    if not rows:
        raise Unauthorized("unknown token", reason="invalid_token")
    token_id, expires_at, revoked_at, user_id, username, active, _, _ = rows[0]
    if revoked_at is not None:
        raise Unauthorized("the token has been revoked", reason="invalid_token")
    if expires_at <= now:
        raise Unauthorized("the token has expired", reason="invalid_token")
    if not active:
        raise Unauthorized("the user is disabled", reason="invalid_token")
    grants = tuple(Grant(Role(role), path) for *_, role, path in rows if role is not None)
    return Principal(user_id, username, grants, token_id, expires_at)


def grants_of(user: User, session: Session) -> list[tuple[str, str | None]]:
    """A user's grants as (role, store code or None)."""
    codes = {
        s.id: s.code
        for s in session.scalars(
            select(Store).where(Store.id.in_([g.store_id for g in user.grants if g.store_id]))
        )
    }
    return [(g.role, codes.get(g.store_id) if g.store_id else None) for g in user.grants]


# --- finding the store a request acts on -------------------------------------------------------

StorePathResolver = Callable[[Session, Any], str | None]


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _store_path(session: Session, value: Any) -> str | None:
    store_id = _as_int(value)
    if store_id is None:
        return None
    return session.scalar(select(Store.path).where(Store.id == store_id))


def _store_code_path(session: Session, value: Any) -> str | None:
    return session.scalar(select(Store.path).where(Store.code == str(value)))


def _unit_path(session: Session, value: Any) -> str | None:
    unit_id = _as_int(value)
    if unit_id is None:
        return None
    return session.scalar(
        select(Store.path)
        .join(StorageUnit, StorageUnit.store_id == Store.id)
        .where(StorageUnit.id == unit_id)
    )


def _model(name: str) -> Any:
    for mapper in Base.registry.mappers:
        if mapper.class_.__name__ == name:
            return mapper.class_
    raise LookupError(f"no model named {name}")


def _via_model(spec: str) -> StorePathResolver:
    """Resolver for "Model.attr": the entity's primary key is the value, attr is a store or unit id.

    "Session.store_id" reads the store id of a session; "Sensor.unit_id>unit" reads a unit id.
    """
    spec, _, then = spec.partition(">")
    model_name, attr = spec.split(".", 1)

    def resolve(session: Session, value: Any) -> str | None:
        model = _model(model_name)
        pk = model.__mapper__.primary_key[0]
        key = str(value) if pk.type.python_type is str else _as_int(value)
        if key is None:
            return None
        ref = session.scalar(select(getattr(model, attr)).where(pk == key))
        return None if ref is None else RESOLVERS[then or "store"](session, ref)

    return resolve


def _sensor_path(session: Session, value: Any) -> str | None:
    """The store of the unit a sensor is mounted in now (None when it is in none)."""
    from logistics.models.readings import SensorAssignment

    unit_id = session.scalar(
        select(SensorAssignment.unit_id)
        .where(SensorAssignment.sensor_id == str(value), SensorAssignment.valid_to.is_(None))
        .order_by(SensorAssignment.valid_from.desc())
        .limit(1)
    )
    return _unit_path(session, unit_id)


# kind -> how to find the store path; "Model.attr" reads attr (a store id, or with ">kind" an id
# of that kind) of the entity whose primary key is the value.
RESOLVERS: dict[str, StorePathResolver] = {
    "store": _store_path,
    "store_code": _store_code_path,
    "unit": _unit_path,
    "sensor": _sensor_path,
    "session": _via_model("Session.store_id"),
    "booking": _via_model("Booking.session_id>session"),
    "movement": _via_model("Movement.store_id"),
    "shipment": _via_model("Shipment.to_store_id"),
    "alert": _via_model("Alert.store_id"),
    "review": _via_model("QuarantineReview.store_id"),
    # an indent's requesting store, and the parent it asks (issue 19)
    "indent_from": _via_model("Indent.from_store_id"),
    "indent_to": _via_model("Indent.to_store_id"),
}


def store_path_of(session: Session, kind: str, value: Any) -> str | None:
    """The path of the store that `value` (an id of an entity of `kind`) belongs to, or None."""
    if value is None:
        return None
    resolver = RESOLVERS.get(kind) or _via_model(kind)
    try:
        return resolver(session, value)
    except LookupError:
        return None
    except DBAPIError as exc:  # e.g. an id beyond the column's range: no such store, none covered
        if is_unavailable(exc):
            raise  # an outage is not "outside your subtree": never answer it with a 403
        session.rollback()
        return None


# --- the demo's own credentials ------------------------------------------------------------------


def _demo_users(session: Session) -> list[tuple[str, list[RoleSpec]]]:
    stores = list(session.scalars(select(Store).order_by(Store.path)))
    by_level: dict[str, list[Store]] = {}
    for store in stores:
        by_level.setdefault(store.level_code, []).append(store)
    users: list[tuple[str, list[RoleSpec]]] = [("admin", ["admin"]), ("viewer", ["viewer"])]
    for username, role, level in (
        ("state", "state_officer", "state"),
        ("district", "district_officer", "district"),
        ("centre", "centre_officer", "centre"),
        ("planner", "planner", "centre"),
    ):
        if by_level.get(level):
            users.append((username, [(role, by_level[level][0].id)]))
    return users


def ensure_demo_credentials(uow: UnitOfWork) -> dict[str, dict[str, Any]]:
    """Create (or reset) the demo's users with fresh random passwords; return them for printing.

    Returns {username: {"password": ..., "roles": [(role, store code or None), ...]}}. Nothing
    is committed to the repository: every demo run makes its own secrets.
    """
    result: dict[str, dict[str, Any]] = {}
    for username, roles in _demo_users(uow.session):
        password = secrets.new_password()
        existing = uow.session.scalars(select(User).where(User.username == username)).one_or_none()
        if existing is None:
            user = create_user(uow, username=username, password=password, roles=roles)
        else:
            set_password(uow, username=username, password=password)
            user = existing
        result[username] = {"password": password, "roles": grants_of(user, uow.session)}
    return result
