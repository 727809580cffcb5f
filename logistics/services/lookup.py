"""The one get-or-404 and the one store-subtree filter every service uses.

Stores carry a materialised path ("/1/4/17/"): a store's subtree is every path it prefixes.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from logistics.db import Base, UnitOfWork, is_postgres
from logistics.domain.errors import NotFound
from logistics.domain.ids import MAX_ID
from logistics.models.catalog import Store

Row = TypeVar("Row", bound=Base)


def get_or_404(
    uow: UnitOfWork,
    model: type[Row],
    ident: int | None,
    detail: str,
    *,
    field: str | None = None,
    max_id: int = MAX_ID,
) -> Row:
    """The row of `model` with this id, or NotFound(detail) naming `field`."""
    in_range = ident is not None and 0 < ident <= max_id
    found = uow.session.get(model, ident) if in_range else None
    if found is None:
        raise NotFound(detail, field=field)
    return found


# The escape character of subtree patterns: paths are made of digits and "/", so "/" itself is
# doubled, and "%" or "_" (never in a path) would match only themselves.
SUBTREE_ESCAPE = "/"


def subtree_pattern(store_path: str) -> str:
    """The LIKE pattern (escaped with SUBTREE_ESCAPE) of every path in the subtree at a path.

    For statements built once with a bound pattern; in_subtree uses it too.
    """
    escaped = "".join(SUBTREE_ESCAPE + c if c in "/%_" else c for c in store_path)
    return escaped + "%"


def in_subtree(path_column: InstrumentedAttribute[str], store_path: str) -> ColumnElement[bool]:
    """Rows whose store path lies in the subtree at `store_path` (itself included)."""
    return path_column.like(subtree_pattern(store_path), escape=SUBTREE_ESCAPE)


def in_bound_subtree(path_column: Any) -> ColumnElement[bool]:
    """in_subtree for a statement built once: the subtree comes as the parameter :subtree
    (subtree_params gives it)."""
    found: ColumnElement[bool] = path_column.like(bindparam("subtree"), escape=SUBTREE_ESCAPE)
    return found


def subtree_params(store_path: str | None) -> dict[str, str]:
    """The :subtree parameter of in_bound_subtree for a store path (None: no subtree, none)."""
    return {} if store_path is None else {"subtree": subtree_pattern(store_path)}


def id_in(session: Session, column: Any, ids: Collection[int]) -> ColumnElement[bool]:
    """`column IN ids` as one bound array on PostgreSQL (`= ANY(:ids)`), a list elsewhere.

    An IN list binds one parameter per id: SQLAlchemy renders the list again on every execution
    and PostgreSQL parses each one, which for a page naming a hundred stores cost more than the
    query itself.
    """
    found: ColumnElement[bool]
    if is_postgres(session):
        found = column == any_(literal(sorted(ids), ARRAY(BigInteger)))
    else:
        found = column.in_(ids)
    return found


def store_ids_within(uow: UnitOfWork, roots: tuple[str, ...] | None) -> set[int] | None:
    """Ids of the stores in these subtrees (None: every store, and None back).

    The API (per request) and the web pages (per login) both cut what they show with it.
    """
    if roots is None:
        return None
    if not roots:
        return set()
    if len(roots) == 1:  # most users hold one subtree: a statement built once
        return set(uow.session.scalars(_IDS_IN_SUBTREE, subtree_params(roots[0])))
    inside = or_(*(in_subtree(Store.path, root) for root in roots))
    return set(uow.session.scalars(select(Store.id).where(inside)))


_IDS_IN_SUBTREE = select(Store.id).where(in_bound_subtree(Store.path))
# Built once: `= ANY(:ids)` on PostgreSQL (see id_in), an expanding IN elsewhere.
_NAMES_OF_STORES = {
    True: select(Store.id, Store.name).where(
        Store.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
    ),
    False: select(Store.id, Store.name).where(Store.id.in_(bindparam("ids", expanding=True))),
}


def store_names(uow: UnitOfWork, ids: Collection[int]) -> dict[int, str]:
    """Names of these stores, by id (a page names the stores it shows, not every store)."""
    statement = _NAMES_OF_STORES[is_postgres(uow.session)]
    rows: list[Any] = list(uow.session.execute(statement, {"ids": sorted(ids)}))
    return dict(rows)


def store_path_of(uow: UnitOfWork, store_id: int | None) -> str | None:
    """The path of a store named by a filter (None: no filter), or NotFound."""
    if store_id is None:
        return None
    detail = f"store {store_id} does not exist"
    return get_or_404(uow, Store, store_id, detail, field="store_id").path
