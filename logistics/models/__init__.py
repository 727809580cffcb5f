"""SQLAlchemy models, one module per area. Importing this package registers every table."""

from logistics.models import (  # noqa: F401
    alerts,
    append_only,
    auth,
    catalog,
    paperwork,
    readings,
    sessions,
    stock,
    transit,
)
from logistics.models.catalog import Lot, Product, StorageUnit, Store, StoreLevel
from logistics.models.stock import StockBalance

__all__ = ["Lot", "Product", "StockBalance", "StorageUnit", "Store", "StoreLevel"]
