"""SQLAlchemy models, one module per area. Importing this package registers every table."""

from logistics.models import alerts, auth, catalog, readings, sessions, stock  # noqa: F401
from logistics.models.catalog import Lot, Product, StorageUnit, Store, StoreLevel
from logistics.models.stock import StockBalance

__all__ = ["Lot", "Product", "StockBalance", "StorageUnit", "Store", "StoreLevel"]
