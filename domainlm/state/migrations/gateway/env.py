"""Alembic environment of the gateway chain."""

from domainlm.state.migrations.run import run
from domainlm.state.schema import metadata

run(metadata, "alembic_version")
