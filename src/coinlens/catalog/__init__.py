"""The catalogue: SQLAlchemy models, Alembic migrations, and how to open the database."""

from coinlens.catalog.db import Catalog, CatalogError, create_catalog_engine, migrate
from coinlens.catalog.home import Home
from coinlens.catalog.models import (
    DECISIONS,
    SIDES,
    SPECIMEN_STATUSES,
    Base,
    CoinType,
    Image,
    Job,
    ModelVersion,
    Review,
    Specimen,
    Suggestion,
)
from coinlens.catalog.queries import catalog_counts, specimens_per_type

__all__ = [
    "DECISIONS",
    "SIDES",
    "SPECIMEN_STATUSES",
    "Base",
    "Catalog",
    "CatalogError",
    "CoinType",
    "Home",
    "Image",
    "Job",
    "ModelVersion",
    "Review",
    "Specimen",
    "Suggestion",
    "catalog_counts",
    "create_catalog_engine",
    "migrate",
    "specimens_per_type",
]
