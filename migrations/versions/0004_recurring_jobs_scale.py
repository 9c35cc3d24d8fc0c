"""running counts kept by triggers, posts.word_count, and indexes for the recurring jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

UNSENT = sa.text('sent_at IS NULL AND failed_at IS NULL')

# blog.models.COUNT_TRIGGERS as this revision made them: (name, fires on, table, when, rows).
COUNTED_CHANGES = (
    ("users_added", "INSERT", "users", None, "('users', NULL, 1)"),
    ("users_removed", "DELETE", "users", None, "('users', NULL, -1)"),
    ("tags_added", "INSERT", "tags", None, "('tags', NULL, 1)"),
    ("tags_removed", "DELETE", "tags", None, "('tags', NULL, -1)"),
    ("posts_added", "INSERT", "posts", None,
     "('posts', NULL, 1), ('words', NULL, NEW.word_count),"
     " ('tagging:' || coalesce(NEW.tagging_state, ''), NULL, 1)"),
    ("posts_removed", "DELETE", "posts", None,
     "('posts', NULL, -1), ('words', NULL, -OLD.word_count),"
     " ('tagging:' || coalesce(OLD.tagging_state, ''), NULL, -1)"),
    ("post_words_changed", "UPDATE OF word_count", "posts", "NEW.word_count <> OLD.word_count",
     "('words', NULL, NEW.word_count - OLD.word_count)"),
    ("post_tagging_changed", "UPDATE OF tagging_state", "posts",
     "coalesce(OLD.tagging_state, '') <> coalesce(NEW.tagging_state, '')",
     "('tagging:' || coalesce(OLD.tagging_state, ''), NULL, -1),"
     " ('tagging:' || coalesce(NEW.tagging_state, ''), NULL, 1)"),
    ("post_tags_added", "INSERT", "post_tags", None, "('tag', NEW.tag_id, 1)"),
    ("post_tags_removed", "DELETE", "post_tags", None, "('tag', OLD.tag_id, -1)"),
)


def upgrade():
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.create_index('ix_emails_unsent', ['created_at'], unique=False, postgresql_where=UNSENT, sqlite_where=UNSENT)

    # Every post's words, counted as the app counts them (Python's str.split, which SQL cannot
    # mimic exactly). No step here copies a table, as SQLite's batch mode would to make a
    # column NOT NULL afterwards: dropping the old posts table would cascade to the tag links.
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('word_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index('ix_posts_tagging_state_changed_at', ['tagging_state', 'tagging_changed_at'], unique=False)
    count_words_of_existing_posts()

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.add_column(sa.Column('post_count', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.create_index(batch_op.f('ix_tags_post_count'), ['post_count'], unique=False)

    op.create_table('count_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=True),
    sa.Column('delta', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_count_changes'))
    )
    op.create_table('running_counts',
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_running_counts'))
    )

    # The triggers come last: a batch operation on SQLite copies its table, without them.
    for statement in count_triggers(op.get_bind().dialect.name):
        op.execute(statement)
    # Then the counts of the rows already there. Deleting the changes first makes this one
    # SQLite write transaction, so that a row written meanwhile counts once (on PostgreSQL,
    # creating the triggers locked the tables against writes until the migration commits).
    op.execute("DELETE FROM count_changes")
    for name, expression, group in (
        ("'users'", "count(*)", "FROM users"),
        ("'posts'", "count(*)", "FROM posts"),
        ("'words'", "coalesce(sum(word_count), 0)", "FROM posts"),
        ("'tags'", "count(*)", "FROM tags"),
        ("'tagging:' || coalesce(tagging_state, '')", "count(*)", "FROM posts GROUP BY tagging_state"),
    ):
        op.execute(f"INSERT INTO running_counts (name, value) SELECT {name}, {expression} {group}")
    op.execute(
        "UPDATE tags SET post_count = counted.posts"
        " FROM (SELECT tag_id, count(*) AS posts FROM post_tags GROUP BY tag_id) AS counted"
        " WHERE counted.tag_id = tags.id"
    )


def count_words_of_existing_posts():
    posts = sa.table('posts', sa.column('id', sa.Integer), sa.column('body', sa.Text), sa.column('word_count', sa.Integer))
    connection = op.get_bind()
    update = posts.update().where(posts.c.id == sa.bindparam('post_id')).values(word_count=sa.bindparam('words'))
    last_id = 0
    while rows := connection.execute(
        sa.select(posts.c.id, posts.c.body).where(posts.c.id > last_id).order_by(posts.c.id).limit(1000)
    ).all():
        connection.execute(update, [{'post_id': id, 'words': len(body.split())} for id, body in rows])
        last_id = rows[-1].id


def count_triggers(dialect):
    """The statements of blog.models.CountTrigger, as this revision wrote them."""
    statements = []
    for name, action, table, condition, rows in COUNTED_CHANGES:
        append = f"INSERT INTO count_changes (name, tag_id, delta) VALUES {rows};"
        when = f" WHEN ({condition})" if condition else ""
        if dialect == "sqlite":
            statements.append(
                f"CREATE TRIGGER {name} AFTER {action} ON {table} FOR EACH ROW{when}"
                f" BEGIN {append} END"
            )
        else:
            statements += [
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql"
                f" AS $$ BEGIN {append} RETURN NULL; END $$",
                f"CREATE TRIGGER {name} AFTER {action} ON {table} FOR EACH ROW{when}"
                f" EXECUTE FUNCTION {name}()",
            ]
    return statements


def downgrade():
    for name, _, table, _, _ in COUNTED_CHANGES:
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        else:
            op.execute(f"DROP FUNCTION IF EXISTS {name}() CASCADE")  # and its trigger
    op.drop_table('running_counts')
    op.drop_table('count_changes')
    # Not in batch mode, which would copy the tables (see upgrade): SQLite drops a column itself.
    op.drop_index(op.f('ix_tags_post_count'), table_name='tags')
    op.drop_column('tags', 'post_count')
    op.drop_index(op.f('ix_users_created_at'), table_name='users')
    op.drop_index('ix_posts_tagging_state_changed_at', table_name='posts')
    op.drop_column('posts', 'word_count')
    op.drop_index('ix_emails_unsent', table_name='emails', postgresql_where=UNSENT, sqlite_where=UNSENT)
