"""Alembic environment of the registry-index chain."""

from domainlm.state.migrations.run import run
from domainlm.state.schema import registry_metadata

run(registry_metadata, "alembic_version_registry")
