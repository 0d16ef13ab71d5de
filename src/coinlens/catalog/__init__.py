"""The catalogue: SQLAlchemy models, Alembic migrations, and how to open the database."""

from coinlens.catalog.db import Catalog, CatalogError, create_catalog_engine, migrate
from coinlens.catalog.home import Home
from coinlens.catalog.models import (
    DECISIONS,
    REVIEW_ACTIONS,
    ROLES,
    SIDES,
    SPECIMEN_MEASURES,
    SPECIMEN_STATUSES,
    TYPE_DESCRIPTORS,
    ApiToken,
    Base,
    CoinType,
    Image,
    Job,
    ModelVersion,
    Review,
    Specimen,
    Suggestion,
    User,
    WebSession,
)
from coinlens.catalog.queries import catalog_counts, specimens_per_type, type_references

__all__ = [
    "DECISIONS",
    "REVIEW_ACTIONS",
    "ROLES",
    "SIDES",
    "SPECIMEN_MEASURES",
    "SPECIMEN_STATUSES",
    "TYPE_DESCRIPTORS",
    "ApiToken",
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
    "User",
    "WebSession",
    "catalog_counts",
    "create_catalog_engine",
    "migrate",
    "specimens_per_type",
    "type_references",
]
