"""HTTP API: the store tree, storage units, products and lots."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask import after_this_request
from flask.views import MethodView
from marshmallow import validate

from logistics.api.blueprint import Blueprint
from logistics.api.context import new_uow
from logistics.api.fields import Day, Flag, Timestamp
from logistics.db import UnitOfWork
from logistics.domain import stock as rules
from logistics.domain.ids import MAX_ID
from logistics.services import catalog

blp = Blueprint(
    "catalog", __name__, url_prefix="/api", description="Stores, storage units, products, lots"
)
BLUEPRINTS = [blp]

EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def request_uow() -> UnitOfWork:
    """A unit of work kept open until the response is serialised, then closed (rolled back)."""
    uow = new_uow().__enter__()

    @after_this_request
    def _close(response: Any) -> Any:
        uow.__exit__(None, None, None)
        return response

    return uow


def _no_nul(value: str) -> None:
    if "\x00" in value:
        raise ma.ValidationError("NUL characters are not allowed")


def text(max_length: int, **kwargs: Any) -> ma.fields.String:
    """A string field of 1..max_length characters (PostgreSQL refuses NUL characters)."""
    return ma.fields.String(validate=[validate.Length(1, max_length), _no_nul], **kwargs)


def ident(strict: bool = True, **kwargs: Any) -> ma.fields.Integer:
    """An id field: a positive 32-bit integer (query strings: `strict=False`, digits accepted)."""
    return ma.fields.Integer(strict=strict, validate=validate.Range(1, MAX_ID), **kwargs)


def doses_field(**kwargs: Any) -> ma.fields.Integer:
    """A quantity of doses: a positive integer."""
    return ma.fields.Integer(strict=True, validate=validate.Range(1, 100_000_000), **kwargs)


def temperature(**kwargs: Any) -> ma.fields.Float:
    """A temperature in degrees Celsius."""
    return ma.fields.Float(validate=validate.Range(-100, 100), **kwargs)


def when(**kwargs: Any) -> ma.fields.DateTime:
    """A timestamp with its zone (e.g. 2026-11-22T10:00:00+05:30), years 2000-2099."""
    return Timestamp(**kwargs)


def day(**kwargs: Any) -> ma.fields.Date:
    """A calendar date, years 2000-2099."""
    return Day(**kwargs)


class StoreLevelSchema(ma.Schema):
    code = text(32, required=True)
    name = text(100, required=True)
    rank = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(0, 100),
        metadata={"description": "0 at the top; a child's level ranks higher"},
    )


class StoreInSchema(ma.Schema):
    code = text(64, required=True)
    name = text(200, required=True)
    level_code = text(32, required=True)
    parent_id = ident(load_default=None, allow_none=True)


class UnitOutSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    store_id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    min_temp_c = ma.fields.Float(required=True)
    max_temp_c = ma.fields.Float(required=True)
    active = ma.fields.Boolean(required=True)


class StoreOutSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    level_code = ma.fields.String(required=True)
    parent_id = ma.fields.Integer(allow_none=True)
    path = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)
    units = ma.fields.List(ma.fields.Nested(UnitOutSchema), required=True)


class StoreQuerySchema(ma.Schema):
    parent_id = ident(strict=False, metadata={"description": "children of this store"})
    level_code = text(32)
    within_id = ident(
        strict=False, metadata={"description": "stores of this store's subtree (itself included)"}
    )


class UnitInSchema(ma.Schema):
    store_id = ident(required=True)
    code = text(64, required=True)
    kind = ma.fields.String(required=True, validate=validate.OneOf(catalog.UNIT_KINDS))
    min_temp_c = temperature(required=True)
    max_temp_c = temperature(required=True, metadata={"description": "Above min_temp_c"})


class UnitQuerySchema(ma.Schema):
    store_id = ident(strict=False)


class ProductSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    code = text(64, required=True)
    name = text(200, required=True)
    doses_per_vial = ma.fields.Integer(strict=True, required=True, validate=validate.Range(1, 1000))
    min_temp_c = temperature(required=True)
    max_temp_c = temperature(required=True, metadata={"description": "Above min_temp_c"})
    freeze_sensitive = Flag(load_default=True)
    open_vial_life_min = ma.fields.Integer(
        strict=True, allow_none=True, load_default=None, validate=validate.Range(0, 100_000)
    )
    gtin = ma.fields.String(
        allow_none=True, load_default=None, validate=validate.Regexp(r"^\d{8,14}$")
    )


GS1_DESCRIPTION = (
    "GS1 element string from the carton, e.g. (01)08901234567890(10)4121Z001(17)270331: it must"
    " parse, with (10) lot and (17) expiry, and (01) GTIN with its check digit if given"
)


class LotInSchema(ma.Schema):
    # A lot is named by its GS1 string or by lot number and expiry; its product by id, or by a
    # GTIN (the field or the GS1 string's (01)).
    OPENAPI_RULES = {
        "allOf": [
            {"anyOf": [{"required": ["gs1"]}, {"required": ["lot_number", "expiry_date"]}]},
            {
                "anyOf": [
                    {"required": ["product_id"]},
                    {"required": ["gtin"]},
                    {"required": ["gs1"]},
                ]
            },
        ]
    }

    product_id = ident(
        metadata={"description": "Optional when a GTIN (gtin, or the GS1 string's) names a product"}
    )
    lot_number = text(64)
    manufacturer = text(200, metadata={"description": "Needed for a lot not yet recorded"})
    expiry_date = day()
    gtin = ma.fields.String(validate=validate.Regexp(r"^\d{8,14}$"))
    gs1 = text(200, metadata={"description": GS1_DESCRIPTION})


class LotOutSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    product_id = ma.fields.Integer(required=True)
    product_code = ma.fields.Function(lambda lot: lot.product.code)
    lot_number = ma.fields.String(required=True)
    manufacturer = ma.fields.String(required=True)
    expiry_date = ma.fields.Date(required=True)
    gtin = ma.fields.String(allow_none=True)
    quarantined = ma.fields.Boolean(required=True)
    doses_per_vial = ma.fields.Function(lambda lot: lot.product.doses_per_vial)


class LotQuerySchema(ma.Schema):
    product_id = ident(strict=False)


NOT_FOUND = {"response": "NOT_FOUND", "description": "unknown id"}
CONFLICT = {"response": "CONFLICT", "description": "code taken"}


@blp.route("/store-levels")
class StoreLevels(MethodView):
    @blp.response(200, StoreLevelSchema(many=True))
    def get(self) -> Any:
        """List the levels of the supply chain."""
        uow = request_uow()
        return catalog.list_store_levels(uow)

    @blp.arguments(StoreLevelSchema)
    @blp.response(201, StoreLevelSchema)
    @blp.alt_response(409, **CONFLICT)
    def post(self, args: dict[str, Any]) -> Any:
        """Add a level (levels are data: more can be added)."""
        uow = request_uow()
        result = catalog.create_store_level(uow, **args)
        uow.commit()
        return result


@blp.route("/stores")
class Stores(MethodView):
    @blp.arguments(StoreQuerySchema, location="query")
    @blp.response(200, StoreOutSchema(many=True))
    @blp.alt_response(404, **NOT_FOUND)
    def get(self, args: dict[str, Any]) -> Any:
        """List stores in tree order, optionally children of one store, one level or a subtree."""
        uow = request_uow()
        return catalog.list_stores(uow, **args)

    @blp.arguments(StoreInSchema)
    @blp.response(201, StoreOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(409, **CONFLICT)
    def post(self, args: dict[str, Any]) -> Any:
        """Add a store under its parent store."""
        uow = request_uow()
        result = catalog.create_store(uow, **args)
        uow.commit()
        return result


@blp.route("/stores/<int:store_id>")
class StoreItem(MethodView):
    @blp.response(200, StoreOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    def get(self, store_id: int) -> Any:
        """One store with its storage units."""
        uow = request_uow()
        return catalog.get_store(uow, store_id)


@blp.route("/units")
class Units(MethodView):
    @blp.arguments(UnitQuerySchema, location="query")
    @blp.response(200, UnitOutSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List storage units, optionally of one store."""
        uow = request_uow()
        return catalog.list_units(uow, **args)

    @blp.arguments(UnitInSchema)
    @blp.response(201, UnitOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(409, **CONFLICT)
    def post(self, args: dict[str, Any]) -> Any:
        """Add a storage unit (ILR, deep freezer, ...) with its safe temperature range."""
        uow = request_uow()
        result = catalog.create_unit(uow, **args)
        uow.commit()
        return result


@blp.route("/units/<int:unit_id>")
class UnitItem(MethodView):
    @blp.response(200, UnitOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    def get(self, unit_id: int) -> Any:
        """One storage unit."""
        uow = request_uow()
        return catalog.get_unit(uow, unit_id)


@blp.route("/products")
class Products(MethodView):
    @blp.response(200, ProductSchema(many=True))
    def get(self) -> Any:
        """List products."""
        uow = request_uow()
        return catalog.list_products(uow)

    @blp.arguments(ProductSchema)
    @blp.response(201, ProductSchema)
    @blp.alt_response(409, **CONFLICT)
    def post(self, args: dict[str, Any]) -> Any:
        """Add a product: doses per vial, storage range, freeze sensitivity, open-vial life."""
        uow = request_uow()
        result = catalog.create_product(uow, **args)
        uow.commit()
        return result


@blp.route("/products/<int:product_id>")
class ProductItem(MethodView):
    @blp.response(200, ProductSchema)
    @blp.alt_response(404, **NOT_FOUND)
    def get(self, product_id: int) -> Any:
        """One product."""
        uow = request_uow()
        return catalog.get_product(uow, product_id)


@blp.route("/lots")
class Lots(MethodView):
    @blp.arguments(LotQuerySchema, location="query")
    @blp.response(200, LotOutSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List lots, earliest expiry first."""
        uow = request_uow()
        return catalog.list_lots(uow, **args)

    @blp.arguments(LotInSchema)
    @blp.response(201, LotOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    @blp.alt_response(409, **CONFLICT)
    def post(self, args: dict[str, Any]) -> Any:
        """Register a lot from its fields or from a carton's GS1 element string."""
        uow = request_uow()
        result = catalog.create_lot(uow, args)
        uow.commit()
        return result


@blp.route("/lots/<int:lot_id>")
class LotItem(MethodView):
    @blp.response(200, LotOutSchema)
    @blp.alt_response(404, **NOT_FOUND)
    def get(self, lot_id: int) -> Any:
        """One lot."""
        uow = request_uow()
        return catalog.get_lot(uow, lot_id)


def vials_of(doses: int, lot: Any) -> float:
    """Vials shown next to doses."""
    return rules.vials(doses, lot.product.doses_per_vial)
