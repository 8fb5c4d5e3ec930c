"""The registry's index: stored versions and their stages, the production history, the registry's audit trail.

Revision ID: r0001
Create Date: 2026-12-06

Created where missing (checkfirst): index.sqlite files from before the migrations existed already hold these
tables. When a later revision changes a table, freeze this revision's definitions here first.
"""

from alembic import op

from domainlm.state.schema import registry_metadata

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    registry_metadata.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    registry_metadata.drop_all(op.get_bind(), checkfirst=True)
