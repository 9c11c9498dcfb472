"""tenants.name unique: a service key's tenantName finds its tenant again (key rotation)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_unique_constraint("uq_tenants_name", "tenants", ["name"])
    op.create_index("ix_api_keys_tenant_kind", "api_keys", ["tenant_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_tenant_kind", table_name="api_keys")
    op.drop_constraint("uq_tenants_name", "tenants")
