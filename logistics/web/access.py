"""Who is logged in to the pages, and what they may see and do.

The session cookie (signed by Flask) holds the API token issued at login, so a page request is
authenticated exactly like an API call (logistics.auth.web.principal_of: the token cache checked
against the access epoch, then logistics.services.auth.authenticate) and a revoked token
or a disabled user is refused at once. Writes are authorised by the API's own policy table:
each form names the API endpoint it stands for (logistics.domain.policy.WRITE_RULES).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from flask import g, request, session

from logistics.api.context import new_uow
from logistics.auth.web import principal_of
from logistics.clock import utcnow
from logistics.db import UnitOfWork, read_only
from logistics.domain import policy
from logistics.domain.errors import Forbidden, NotFound, Unauthorized
from logistics.models.catalog import Store
from logistics.services import lookup
from logistics.services.auth import Principal, store_path_of

TOKEN_KEY = "token"


# The pages' clock is the service's one clock (logistics.clock).
now = utcnow


ENTRY_TIME_KEY = "entry_made_at"


def entry_time() -> dt.datetime | None:
    """When the entry being recorded was made, if it was queued offline (views/sync.py sets it
    per entry); None for a form posted directly, which happens now."""
    made: dt.datetime | None = g.get(ENTRY_TIME_KEY)
    return made


READ_UOW_KEY = "read_uow"
READING_METHODS = frozenset({"GET", "HEAD"})


@contextlib.contextmanager
def read_uow() -> Iterator[UnitOfWork]:
    """A unit of work to read with: a page asked for with GET reads in its request's one unit of
    work (opened to check the session's token, closed by close_read_uow when the request ends),
    so a page costs one connection checkout, not one per step. Any other
    method (a form that records, then shows the page again) gets a fresh one, as new_uow.

    The page's unit reads in autocommit and cannot write (logistics.db.read_only).
    """
    if request.method not in READING_METHODS:
        with new_uow() as uow:
            yield uow
        return
    uow = g.get(READ_UOW_KEY)
    if uow is None:
        uow = read_only(new_uow().__enter__())
        g.read_uow = uow
    yield uow


def close_read_uow(_error: BaseException | None = None) -> None:
    """Roll back and close the request's reading unit of work, if it opened one (teardown)."""
    uow = g.pop(READ_UOW_KEY, None)
    if uow is not None:
        uow.__exit__(None, None, None)


def load_principal() -> Principal | None:
    """The principal of this request's session cookie (None: not logged in, or token revoked)."""
    token = session.get(TOKEN_KEY)
    if not token:
        return None
    try:
        with read_uow() as uow:
            principal = principal_of(uow, token)
    except Unauthorized:
        session.pop(TOKEN_KEY, None)
        return None
    g.principal, g.actor = principal, principal.username
    return principal


def principal() -> Principal:
    """The logged-in principal (views run only after load_principal succeeded)."""
    return g.principal


def roles() -> set[str]:
    """The roles the user holds anywhere."""
    return {str(grant.role) for grant in principal().grants}


def may(permission: policy.Permission) -> bool:
    """Tell whether the user holds this permission over some store (to show or hide a form)."""
    return any(permission in policy.ROLE_PERMISSIONS[grant.role] for grant in principal().grants)


def can_see(store_path: str) -> bool:
    """Tell whether a store lies within one of the user's subtrees (or the user is network-wide)."""
    return any(
        grant.store_path is None or store_path.startswith(grant.store_path)
        for grant in principal().grants
    )


def visible_store_ids(uow: UnitOfWork) -> set[int] | None:
    """Ids of the stores the user may see (None: the whole network), as the API reckons them."""
    return lookup.store_ids_within(uow, policy.visible_roots(principal().grants))


def visible_store(uow: UnitOfWork, store_id: int) -> Store:
    """The store, if it exists and the user may see it; 404 otherwise (never tell it exists)."""
    store = uow.session.get(Store, store_id) if 0 < store_id < 2**31 else None
    if store is None or not can_see(store.path):
        raise NotFound(f"no store {store_id}")
    return store


def authorize(uow: UnitOfWork, endpoint: str, values: Mapping[str, Any]) -> None:
    """Refuse (403) a form unless the API policy allows its endpoint on the stores it names.

    `values` holds the request fields the endpoint's rule reads (body, URL or query names).
    """
    rule = policy.write_rule(endpoint, "POST")
    grants = principal().grants
    paths = [
        store_path_of(uow.session, t.kind, values.get(t.name))
        for t in rule.targets
        if not (t.optional and values.get(t.name) is None)
    ]
    if policy.allows(grants, rule, []) or (
        not rule.network and rule.targets and policy.allows(grants, rule, paths)
    ):
        return
    raise Forbidden(f"your roles do not allow '{rule.permission}' here")


def home_stores(uow: UnitOfWork) -> list[Store]:
    """The stores at the top of the user's subtrees (network-wide users: the root stores)."""
    from sqlalchemy import select

    paths = [grant.store_path for grant in principal().grants]
    if any(path is None for path in paths):
        return list(
            uow.session.scalars(select(Store).where(Store.parent_id.is_(None)).order_by(Store.id))
        )
    return list(
        uow.session.scalars(select(Store).where(Store.path.in_(set(paths))).order_by(Store.path))
    )


def subtree_path(uow: UnitOfWork) -> str | None:
    """The single subtree the user's home shows (None: the whole network)."""
    paths = {grant.store_path for grant in principal().grants}
    if None in paths or not paths:
        return None
    if len(paths) == 1:
        # A grant's path is its store's (read with the principal): nothing more to read.
        return paths.pop()
    stores = home_stores(uow)
    return stores[0].path if stores else None
