"""The gateway tables: api keys, vertical suspensions and their events, held answers, the audit log.

Revision ID: 0001
Create Date: 2026-12-06

Created where missing (checkfirst): SQLite files from before the migrations existed already hold these tables.
When a later revision changes a table, freeze this revision's definitions here first.
"""

from alembic import op

from domainlm.state.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), checkfirst=True)
