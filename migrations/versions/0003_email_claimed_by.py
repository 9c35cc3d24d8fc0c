"""emails: claimed_by, the worker whose run holds the claim

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.drop_column('claimed_by')
