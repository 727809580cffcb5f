"""The fault suite reuses the ingestion tests' fixtures (a topic prefix per test, a publisher)."""

from tests.integration.test_ingest import (  # noqa: F401  (fixtures)
    ingest_runtime,
    prefix,
    publisher,
    start_ingestor,
)
