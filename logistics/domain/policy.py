"""Who may do what: roles, their permissions, and the one table of rules for every write endpoint.

Pure rules (no Flask, no database). A user holds grants: a role over a store's subtree (stores
carry a materialised path such as "/1/4/17/", so "within the subtree" is a prefix test) or over
the whole network. A write request needs a permission over the store(s) it acts on; the table
`WRITE_RULES` says, per Flask endpoint, which permission and where in the request the store is
named. An endpoint missing from the table is open to admins only (fail closed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    STATE_OFFICER = "state_officer"
    DISTRICT_OFFICER = "district_officer"
    CENTRE_OFFICER = "centre_officer"  # the store officer at a cold chain point / centre
    PLANNER = "planner"  # plans sessions and bookings at a centre
    VIEWER = "viewer"


class Permission(StrEnum):
    ADMIN = "admin"  # users, tokens, sensor credentials, anything without a rule
    AUDIT = "audit.read"
    STOCK = "stock.write"  # movements: receipts, issues, transfers, consumption, wastage, counts
    STORES = "stores.write"  # stores of a subtree and their storage units
    PRODUCTS = "products.write"  # products and lots: reference data shared by the whole network
    SENSORS = "sensors.write"  # sensor registry and assignments to units
    ALERTS = "alerts.write"  # acknowledging alerts, reviewing quarantined doses
    SESSIONS = "sessions.write"  # sessions, slots, bookings, end-of-session reports
    SELF = "self"  # acting on one's own account (log out)


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.STATE_OFFICER: frozenset(
        {
            Permission.STOCK,
            Permission.STORES,
            Permission.PRODUCTS,
            Permission.SENSORS,
            Permission.ALERTS,
            Permission.SELF,
        }
    ),
    Role.DISTRICT_OFFICER: frozenset(
        {
            Permission.STOCK,
            Permission.STORES,
            Permission.SENSORS,
            Permission.ALERTS,
            Permission.SELF,
        }
    ),
    Role.CENTRE_OFFICER: frozenset(
        {Permission.STOCK, Permission.SENSORS, Permission.ALERTS, Permission.SELF}
    ),
    Role.PLANNER: frozenset({Permission.SESSIONS, Permission.SELF}),
    Role.VIEWER: frozenset({Permission.SELF}),
}


@dataclasses.dataclass(frozen=True)
class Grant:
    """A role over the subtree whose root has this path (None: over the whole network)."""

    role: Role
    store_path: str | None

    def covers(self, permission: Permission, target_path: str | None) -> bool:
        """Tell whether this grant gives `permission` over the store at `target_path`.

        A target that could not be told (None) is covered only by a network-wide grant.
        """
        if permission not in ROLE_PERMISSIONS[self.role]:
            return False
        if self.store_path is None:
            return True
        return target_path is not None and target_path.startswith(self.store_path)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a request names the store it acts on, and how to get from that value to a store.

    `source` is "view" (URL variable), "json" (body field; in a list body, every item's) or
    "query". `kind` names the entity the value identifies ("store", "unit", "session", ...);
    logistics.services.auth.store_id_of turns (kind, value) into a store id.
    """

    source: str
    name: str
    kind: str = "store"
    optional: bool = False  # a field the request may leave out; when given, it must be covered


def view(name: str, kind: str = "store") -> Target:
    """The store named by the URL variable `name` (of an entity of `kind`)."""
    return Target("view", name, kind)


def body(name: str, kind: str = "store", *, optional: bool = False) -> Target:
    """The store named by the JSON body field `name` (of an entity of `kind`)."""
    return Target("json", name, kind, optional)


def query(name: str, kind: str = "store") -> Target:
    """The store named by the query parameter `name` (of an entity of `kind`)."""
    return Target("query", name, kind)


@dataclasses.dataclass(frozen=True)
class Rule:
    """The permission a write needs, and the stores it acts on.

    `network=True`: the write changes reference data shared by every store (products, lots), so
    any grant carrying the permission suffices. Otherwise every target must resolve to a store
    inside a grant's subtree; a rule with no targets needs a network-wide grant.
    """

    permission: Permission
    targets: tuple[Target, ...] = ()
    network: bool = False


ADMIN_ONLY = Rule(Permission.ADMIN)

# Endpoints anyone may call without logging in (Flask endpoint names).
PUBLIC_ENDPOINTS: frozenset[str] = frozenset(
    {
        "system.Health",
        "system.Live",
        "system.Ready",
        # Prometheus scrapes without a token: expose /metrics to the monitoring network only.
        "metrics",
        "auth.Login",
        "api-docs.openapi_json",
        "api-docs.openapi_swagger_ui",
        "api-docs.openapi_redoc",
        "static",
    }
)
# Public reads under this path (the CoWIN-shaped availability API) need no login either.
PUBLIC_READ_PREFIXES: tuple[str, ...] = ("/api/v2/appointment/",)
# Public endpoints whose calls count against the per-address rate limit (the rest are cheap).
RATE_LIMITED_ENDPOINTS: frozenset[str] = frozenset({"auth.Login"})

# Reads that need more than a login.
READ_RULES: Mapping[str, Permission] = {
    "auth.AuditLog": Permission.AUDIT,
    "auth.Users": Permission.ADMIN,
    "auth.UserItem": Permission.ADMIN,
    "auth.UserTokens": Permission.ADMIN,
    "auth.MqttCredentials": Permission.ADMIN,
}

_MOVEMENT_AT_UNIT = (body("store_id"), body("unit_id", "unit"))
# An indent's requesting store and the parent it asks (issue 19).
_INDENT_FROM, _INDENT_TO = "indent_from", "indent_to"

# Every write endpoint: "METHOD blueprint.View" (one method) or "blueprint.View" (all of them).
# A request naming several stores (a store and a unit, a sender and a receiver) needs all of them.
WRITE_RULES: Mapping[str, Rule] = {
    # stock ledger (issue 2): store officers record movements of their subtree's stores
    "stock.Receipts": Rule(
        Permission.STOCK, (*_MOVEMENT_AT_UNIT, body("shipment_id", "shipment", optional=True))
    ),
    "stock.Issues": Rule(
        Permission.STOCK,
        (body("store_id"), body("to_store_id"), body("unit_id", "unit", optional=True)),
    ),
    "stock.Transfers": Rule(
        Permission.STOCK,
        (body("store_id"), body("from_unit_id", "unit"), body("to_unit_id", "unit")),
    ),
    "stock.Consumptions": Rule(Permission.STOCK, _MOVEMENT_AT_UNIT),
    "stock.Wastages": Rule(Permission.STOCK, _MOVEMENT_AT_UNIT),
    "stock.Counts": Rule(Permission.STOCK, _MOVEMENT_AT_UNIT),
    "stock.Reversal": Rule(Permission.STOCK, (view("movement_id", "movement"),)),
    # A recall holds a lot in a subtree: state officers over their state, admins anywhere (a
    # recall without a store holds the lot in the whole network: network-wide grants only).
    "stock.LotRecalls": Rule(Permission.PRODUCTS, (body("store_id", optional=True),)),
    "stock.LotRecallLift": Rule(Permission.PRODUCTS, (body("store_id", optional=True),)),
    # catalog (issue 2): the tree below one's store; products and lots are shared reference data
    "catalog.StoreLevels": ADMIN_ONLY,
    "catalog.Stores": Rule(Permission.STORES, (body("parent_id"),)),  # a root store: admins
    "catalog.Units": Rule(Permission.STORES, (body("store_id"),)),
    "catalog.Products": Rule(Permission.PRODUCTS, network=True),
    "catalog.Lots": Rule(Permission.PRODUCTS, network=True),
    # sensors (issue 3): registered to, and moved between, units of one's subtree
    "readings.Sensors": Rule(Permission.SENSORS, (body("unit_id", "unit"),)),
    "readings.SensorMoves": Rule(
        Permission.SENSORS, (view("sensor_id", "sensor"), body("unit_id", "unit"))
    ),
    "readings.SensorRetirement": Rule(Permission.SENSORS, (view("sensor_id", "sensor"),)),
    # alerts (issue 4)
    "alerts.AlertAcknowledge": Rule(Permission.ALERTS, (view("alert_id", "alert"),)),
    "alerts.AlertResolve": Rule(Permission.ALERTS, (view("alert_id", "alert"),)),
    # Releasing or discarding held doses changes usable stock: a store officer's decision.
    "alerts.ReviewRelease": Rule(Permission.STOCK, (view("review_id", "review"),)),
    "alerts.ReviewDiscard": Rule(Permission.STOCK, (view("review_id", "review"),)),
    "alerts.Targets": Rule(Permission.ALERTS, (body("store_id"),)),
    "alerts.StockLevels": Rule(Permission.STORES, (body("store_id"),)),
    "alerts.ProductRules": Rule(Permission.PRODUCTS, network=True),
    "alerts.UnitRules": Rule(Permission.STORES, (view("unit_id", "unit"),)),
    # sessions (issue 5): a centre's planner plans its sessions and bookings
    "sessions.Sessions": Rule(Permission.SESSIONS, (body("store_id"),)),
    "sessions.SessionItem": Rule(Permission.SESSIONS, (view("session_id", "session"),)),
    "sessions.SessionCancel": Rule(Permission.SESSIONS, (view("session_id", "session"),)),
    "sessions.SessionBookings": Rule(Permission.SESSIONS, (view("session_id", "session"),)),
    "sessions.SessionReportView": Rule(Permission.SESSIONS, (view("session_id", "session"),)),
    "sessions.BookingCancel": Rule(Permission.SESSIONS, (view("booking_id", "booking"),)),
    # paperwork (issue 19): the officer of the unit's store signs its temperature log off
    "reports.TemperatureLogSignoff": Rule(Permission.ALERTS, (view("unit_id", "unit"),)),
    # equipment register: the store tree's managers describe units; a store's officer reports
    # that a unit broke (its doses must move) or works again
    "equipment.UnitEquipment": Rule(Permission.STORES, (view("unit_id", "unit"),)),
    "equipment.UnitStatus": Rule(Permission.STOCK, (view("unit_id", "unit"),)),
    # indents: the requesting store raises, cancels and receives; its parent answers and ships
    "indents.Indents": Rule(Permission.STOCK, (body("from_store_id"),)),
    "indents.IndentCancel": Rule(Permission.STOCK, (view("indent_id", _INDENT_FROM),)),
    "indents.IndentReceive": Rule(
        Permission.STOCK, (view("indent_id", _INDENT_FROM), body("unit_id", "unit"))
    ),
    "indents.IndentApprove": Rule(Permission.STOCK, (view("indent_id", _INDENT_TO),)),
    "indents.IndentReject": Rule(Permission.STOCK, (view("indent_id", _INDENT_TO),)),
    "indents.IndentShip": Rule(
        Permission.STOCK, (view("indent_id", _INDENT_TO), body("unit_id", "unit", optional=True))
    ),
    # vaccines in transit (issue 18): carriers are a store's units; packing is a stock movement
    "transit.Carriers": Rule(Permission.STORES, (body("store_id"),)),
    "transit.CarriedIssues": Rule(
        Permission.STOCK,
        (body("store_id"), body("to_store_id"), body("unit_id", "unit", optional=True)),
    ),
    "transit.ShipmentCarriers": Rule(Permission.STOCK, (view("shipment_id", "shipment"),)),
    # auth (issue 6)
    "auth.Logout": Rule(Permission.SELF, network=True),
    "auth.Users": ADMIN_ONLY,
    "auth.UserItem": ADMIN_ONLY,
    "auth.UserTokens": ADMIN_ONLY,
    "auth.TokenItem": ADMIN_ONLY,
    "auth.SensorCredentials": ADMIN_ONLY,
}

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclasses.dataclass(frozen=True)
class ReadScope:
    """Which stores a read shows, so a reader with store-scoped grants sees only their subtrees.

    Every role may read within its grants' subtrees (a state officer: the state; a district or
    centre user: the district or centre and below); a network-wide grant reads everything.
    - `network`: reference data shared by every store (products, lots, the store tree) or a
      read gated by a permission of its own (READ_RULES): any login.
    - `targets`: the stores the request names; each one given must be inside a grant's subtree.
    - `narrow`: a list that a scoped reader must narrow to one of its stores by giving at least
      one of the (optional) targets; unnarrowed, it would show every store's rows.
    - `filtered`: the view itself leaves out what lies outside the reader's subtrees (a lot's
      trace or thermal history crosses the whole network).
    An endpoint missing from the table is readable by network-wide grants only (fail closed).
    """

    targets: tuple[Target, ...] = ()
    network: bool = False
    narrow: bool = False
    filtered: bool = False


NETWORK_READ = ReadScope(network=True)


def query_opt(name: str, kind: str = "store") -> Target:
    """A query parameter that may be left out; when given, its store must be covered."""
    return Target("query", name, kind, optional=True)


# Every GET endpoint (Flask endpoint name) and what it shows.
READ_SCOPES: Mapping[str, ReadScope] = {
    # reference data and reads gated by READ_RULES
    "auth.Me": NETWORK_READ,
    "auth.AuditLog": NETWORK_READ,
    "auth.Users": NETWORK_READ,
    "auth.UserItem": NETWORK_READ,
    "auth.UserTokens": NETWORK_READ,
    "auth.MqttCredentials": NETWORK_READ,
    "catalog.StoreLevels": NETWORK_READ,
    "catalog.Stores": NETWORK_READ,
    "catalog.StoreItem": NETWORK_READ,
    "catalog.Units": NETWORK_READ,
    "catalog.UnitItem": NETWORK_READ,
    "catalog.Products": NETWORK_READ,
    "catalog.ProductItem": NETWORK_READ,
    "catalog.Lots": NETWORK_READ,
    "catalog.LotItem": NETWORK_READ,
    "alerts.ProductRules": NETWORK_READ,
    # stock ledger
    "stock.Balances": ReadScope((query("unit_id", "unit"),)),
    "stock.Movements": ReadScope((query_opt("store_id"),), narrow=True),
    "stock.MovementItem": ReadScope((view("movement_id", "movement"),)),
    # A shipment goes from a store to its child: the child's subtree is inside the sender's.
    "stock.Shipments": ReadScope((query_opt("store_id"),), narrow=True),
    "stock.ShipmentItem": ReadScope((view("shipment_id", "shipment"),)),
    "stock.StoreStock": ReadScope((view("store_id"),)),
    "stock.LotTrace": ReadScope(filtered=True),
    # A recall is safety news every store holding the lot needs.
    "stock.LotRecalls": NETWORK_READ,
    # temperatures, excursions, alerts
    "readings.SensorItem": ReadScope((view("sensor_id", "sensor"),)),
    "readings.UnitReadings": ReadScope((view("unit_id", "unit"),)),
    "readings.StoreLatest": ReadScope((view("store_id"),)),
    # Dead letters of unknown sensors belong to no store: network-wide readers only.
    "readings.DeadLetters": ReadScope((query_opt("sensor_id", "sensor"),), narrow=True),
    "alerts.Alerts": ReadScope((query_opt("store_id"),), narrow=True),
    "alerts.AlertItem": ReadScope((view("alert_id", "alert"),)),
    "alerts.Excursions": ReadScope(
        (query_opt("store_id"), query_opt("unit_id", "unit")), narrow=True
    ),
    "alerts.Reviews": ReadScope((query_opt("store_id"),), narrow=True),
    "alerts.UnitMkt": ReadScope((view("unit_id", "unit"),)),
    "alerts.UnitRules": ReadScope((view("unit_id", "unit"),)),
    "alerts.LotThermalHistory": ReadScope(filtered=True),
    # sessions
    "sessions.Sessions": ReadScope((query("store_id"),)),
    "sessions.SessionItem": ReadScope((view("session_id", "session"),)),
    "sessions.UsableDoses": ReadScope((view("store_id"),)),
    "sessions.DistrictPlanner": ReadScope((view("district_id"),)),
    # paperwork (issue 19): reports, temperature logs, indents, equipment
    "reports.StockReport": ReadScope((query("store_id"),)),
    "reports.StockReportCsv": ReadScope((query("store_id"),)),
    "reports.StockReportPdf": ReadScope((query("store_id"),)),
    "reports.TemperatureLog": ReadScope((view("unit_id", "unit"),)),
    "reports.TemperatureLogCsv": ReadScope((view("unit_id", "unit"),)),
    "reports.TemperatureLogPdf": ReadScope((view("unit_id", "unit"),)),
    "indents.IndentSuggestion": ReadScope((query("store_id"),)),
    "indents.Indents": ReadScope((query_opt("store_id"),), narrow=True),
    # The raising store is a child of the store asked: both see the indent.
    "indents.IndentItem": ReadScope((view("indent_id", "indent_from"),)),
    "equipment.UnitEquipment": ReadScope((view("unit_id", "unit"),)),
    "equipment.UnitRepairs": ReadScope((view("unit_id", "unit"),)),
    "equipment.FunctionalUnits": ReadScope((query_opt("within_id"),), narrow=True),
    # vaccines in transit (issue 18)
    "transit.Carriers": ReadScope((query_opt("store_id"),), narrow=True),
    "transit.ShipmentTrip": ReadScope((view("shipment_id", "shipment"),)),
    "transit.LotJourney": ReadScope(filtered=True),
}
NO_READ_SCOPE = ReadScope()  # fail closed: no targets to check, so network-wide readers only


def is_public(endpoint: str | None, method: str, path: str) -> bool:
    """Tell whether this request needs no login."""
    if endpoint in PUBLIC_ENDPOINTS:
        return True
    return method in {"GET", "HEAD"} and path.startswith(PUBLIC_READ_PREFIXES)


def is_rate_limited(endpoint: str | None, method: str, path: str) -> bool:
    """Tell whether this public request counts against the per-address limit."""
    if endpoint in RATE_LIMITED_ENDPOINTS:
        return True
    return method in {"GET", "HEAD"} and path.startswith(PUBLIC_READ_PREFIXES)


def write_rule(endpoint: str, method: str) -> Rule:
    """The rule of a write endpoint; an endpoint without one is for admins only."""
    return WRITE_RULES.get(f"{method} {endpoint}") or WRITE_RULES.get(endpoint) or ADMIN_ONLY


def has_explicit_rule(endpoint: str, method: str) -> bool:
    """Tell whether the table names this write endpoint (checked by a test for every endpoint)."""
    return f"{method} {endpoint}" in WRITE_RULES or endpoint in WRITE_RULES


def read_permission(endpoint: str) -> Permission | None:
    """The permission a read needs beyond a login, if any."""
    return READ_RULES.get(endpoint)


def allows(grants: Iterable[Grant], rule: Rule, target_paths: list[str | None]) -> bool:
    """Tell whether these grants allow a write under `rule` on stores at `target_paths`.

    `target_paths` holds one path per store the request names (None where it could not be told).
    """
    grants = list(grants)
    if rule.permission is Permission.SELF:
        return True  # acting on one's own account needs a login only
    if rule.network:
        return any(rule.permission in ROLE_PERMISSIONS[g.role] for g in grants)
    paths = target_paths or [None]
    return all(any(g.covers(rule.permission, path) for g in grants) for path in paths)


def read_scope(endpoint: str) -> ReadScope:
    """What a read shows; an endpoint missing from READ_SCOPES is for network-wide readers."""
    return READ_SCOPES.get(endpoint, NO_READ_SCOPE)


def reads_everything(grants: Iterable[Grant]) -> bool:
    """Tell whether a grant covers the whole network (admins, network-wide officers/viewers)."""
    return any(g.store_path is None for g in grants)


def sees(grants: Iterable[Grant], target_path: str | None) -> bool:
    """Tell whether any grant's subtree holds the store at `target_path` (None: no store)."""
    return target_path is not None and any(
        g.store_path is None or target_path.startswith(g.store_path) for g in grants
    )


def visible_roots(grants: Iterable[Grant]) -> tuple[str, ...] | None:
    """Paths of the subtrees these grants may read; None: everything."""
    grants = list(grants)
    if reads_everything(grants):
        return None
    return tuple(sorted({g.store_path for g in grants if g.store_path is not None}))


def may_read(grants: Iterable[Grant], permission: Permission | None) -> bool:
    """Tell whether these grants allow a read needing `permission` (None: any login)."""
    if permission is None:
        return True
    return any(g.covers(permission, None) for g in grants)
