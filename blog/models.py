"""The data model: users, posts, tags (with who added each), the outbox of emails, and the
running counts the database keeps of them for the stats page."""

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    delete,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates
from werkzeug.security import check_password_hash, generate_password_hash

from blog.extensions import db

EMAIL_MAX = 254
TITLE_MAX = 200
BODY_MAX = 100_000
TAG_MAX = 40
TAGS_PER_POST_MAX = 15

AUTHOR = "author"
TAGGER = "tagger"


class TaggingState(StrEnum):
    """Where a post's tagging stands (``Post.tagging_state``; None before any)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


def utcnow() -> datetime:
    return datetime.now(UTC)


def upsert(model):
    """An ``INSERT`` that takes ``ON CONFLICT`` clauses, for the database in use."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database (SQLite stores none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use blog.models.utcnow()")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    # Indexed for requeue_stranded_work, which looks at the signups of the last few minutes.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    posts: Mapped[list["Post"]] = relationship(back_populates="author")

    @staticmethod
    def normalise_email(email: str) -> str:
        return email.strip().lower()

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(
            password, method=current_app.config["PASSWORD_HASH_METHOD"]
        )

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @classmethod
    def by_email(cls, email: str) -> "User | None":
        return db.session.scalar(select(cls).where(cls.email == cls.normalise_email(email)))

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(TAG_MAX), unique=True)
    # The posts that have the tag, kept by the database (see RunningCount); indexed for the
    # stats page's top ten.
    post_count: Mapped[int] = mapped_column(BigInteger, server_default="0", index=True)

    @staticmethod
    def normalise(name: str) -> str:
        """Trim, fold runs of white space into one space, and lower-case.

        The dotted capital İ becomes a plain i, as in Turkish, where it comes from: Python's
        ``lower()`` would give "i" plus a combining dot, which looks like a stray mark and
        would make "İstanbul" and "ISTANBUL" two tags. NFC then gives "é" typed as e plus an
        accent and "é" typed as one letter the same name.
        """
        folded = re.sub(r"\s+", " ", name).strip().replace("İ", "i").lower()
        return unicodedata.normalize("NFC", folded)

    @classmethod
    def ids(cls, names: list[str]) -> list[int]:
        """The ids of the tags with these (normalised) names, each once and in their order,
        the missing ones created.

        Most names exist already, so one SELECT usually does. ``INSERT ... ON CONFLICT DO
        NOTHING`` makes the creation safe when the web process and a worker create the same
        new tag at the same moment: whoever comes second reads the other's row.
        """
        tags = cls.__table__

        def lookup(wanted: list[str]) -> dict[str, int]:
            query = select(tags.c.name, tags.c.id).where(tags.c.name.in_(wanted))
            return dict(db.session.execute(query).all())

        names = list(dict.fromkeys(names))
        found = lookup(names) if names else {}
        if missing := [name for name in names if name not in found]:
            # In a fixed order: two transactions creating the same new names in opposite
            # orders would wait on each other on PostgreSQL's unique index (a deadlock).
            rows = [{"name": name} for name in sorted(missing)]
            db.session.execute(upsert(tags).values(rows).on_conflict_do_nothing())
            found |= lookup(missing)
        return [found[name] for name in names]

    def __repr__(self) -> str:
        return f"<Tag {self.name}>"


class PostTag(db.Model):
    """A tag on a post, and who put it there: the author or the tagger job."""

    __tablename__ = "post_tags"
    __table_args__ = (CheckConstraint(f"source IN ('{AUTHOR}', '{TAGGER}')", name="source"),)

    post_id: Mapped[int] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(10))

    post: Mapped["Post"] = relationship(back_populates="tag_links")
    tag: Mapped[Tag] = relationship(lazy="joined")

    @classmethod
    def replace(
        cls, post_id: int, names: list[str], source: str, *, new_post: bool = False
    ) -> None:
        """Make ``names`` the post's tags from ``source``, leaving the other source's alone;
        on a ``new_post``, which has no links yet, only add them.

        An author's tag wins over the tagger's for the same name; the tagger never removes or
        takes over an author's tag. Setting the same names twice changes nothing.

        The tagging job runs this for every post, so it is written for the database: three
        statements on the tables when the tags exist (five when some are new), whatever the
        post had, each list of rows sent as one statement, with no read of the links first and
        none of the ORM's bookkeeping (``Post.set_tags`` tells the session afterwards).
        """
        tag_ids = Tag.ids(names)
        links = cls.__table__
        if not new_post:
            db.session.execute(
                delete(links).where(
                    links.c.post_id == post_id,
                    links.c.source == source,
                    links.c.tag_id.not_in(tag_ids),
                )
            )
        if not tag_ids:
            return
        add = upsert(links).values(
            [{"post_id": post_id, "tag_id": tag_id, "source": source} for tag_id in tag_ids]
        )
        if source == AUTHOR:  # the author takes over the tagger's link to the same tag
            add = add.on_conflict_do_update(
                index_elements=[links.c.post_id, links.c.tag_id],
                set_={"source": AUTHOR},
                where=links.c.source != AUTHOR,
            )
        else:
            add = add.on_conflict_do_nothing()
        db.session.execute(add)


class Post(db.Model):
    __tablename__ = "posts"
    __table_args__ = (
        CheckConstraint(
            f"tagging_state IN ({', '.join(repr(str(state)) for state in TaggingState)})",
            name="tagging_state",
        ),
        # For requeue_stranded_work's search for the posts pending for too long.
        Index("ix_posts_tagging_state_changed_at", "tagging_state", "tagging_changed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body: Mapped[str] = mapped_column(Text)
    # The body's words, kept in step with it (``count_words``), for the stats page's count of
    # words (see RunningCount). The default served the migration that added the column, which
    # then counted the words of the posts already there.
    word_count: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # When the author last changed the post (not when the tagger did).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped on every edit, so a tagging job can tell that it read an older version.
    content_version: Mapped[int] = mapped_column(Integer, default=1)
    tagging_state: Mapped[str | None] = mapped_column(String(10))
    tagging_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    author: Mapped[User] = relationship(back_populates="posts")
    tag_links: Mapped[list[PostTag]] = relationship(
        back_populates="post", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def tags(self) -> list[PostTag]:
        """The post's tags, sorted by name, each knowing its source."""
        return sorted(self.tag_links, key=lambda link: link.tag.name)

    def tag_names(self, source: str | None = None) -> list[str]:
        return [link.tag.name for link in self.tags if source in (None, link.source)]

    @validates("body")
    def count_words(self, key: str, body: str) -> str:
        """Count the words of every body the post is given, in the constructor too."""
        self.word_count = len(body.split())
        return body

    def set_tags(self, names: list[str], source: str) -> None:
        """Make ``names`` the post's tags from ``source`` (see ``PostTag.replace``). The post
        must be in the session (added, or loaded)."""
        new_post = inspect(self).pending  # not written yet: it has no links to replace
        db.session.flush()  # the post's row (and id) first, then its tag links
        PostTag.replace(self.id, names, source, new_post=new_post)
        # The ORM did not see those writes: the tag links are read afresh next time. On a post
        # read before, expiring the whole post expires its links too, through the
        # relationship's cascade ("all" includes "refresh-expire"); without it, a link read
        # before would keep its old source. A new post has no link loaded, and the row just
        # written is what the session holds: only the list of links needs reading again.
        db.session.expire(self, ["tag_links"] if new_post else None)

    def edit(self, title: str, body: str) -> None:
        self.title = title
        self.body = body
        self.content_version += 1
        self.updated_at = utcnow()

    def mark_tagging(self, state: TaggingState) -> None:
        self.tagging_state = state
        self.tagging_changed_at = utcnow()

    def __repr__(self) -> str:
        return f"<Post {self.id} {self.title!r}>"


class Email(db.Model):
    """The outbox: every message the app sends, one row per (user, kind) at most, written in
    the same transaction as what it is about (the welcome email with the user).

    ``claimed_at`` is set while an attempt sends it (``claimed_by``: the RQ worker running
    it), then ``sent_at``, or ``failed_at`` when the retries ran out: how ``send_email`` uses
    them is in ``workers/mailers.py``.
    """

    __tablename__ = "emails"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", name="uq_emails_user_id_kind"),
        # The outbox's unsent emails, which requeue_stranded_work looks through every minute:
        # few at any time, however many were sent.
        Index(
            "ix_emails_unsent",
            "created_at",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
            sqlite_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(40))
    to_address: Mapped[str] = mapped_column(String(EMAIL_MAX))
    subject: Mapped[str] = mapped_column(String(200))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(Text)  # a worker's name: no limit, as its host's
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User | None] = relationship()

    @property
    def state(self) -> str:
        """``sent``, ``failed``, ``sending`` (claimed by an attempt) or ``queued``."""
        if self.sent_at:
            return "sent"
        if self.failed_at:
            return "failed"
        return "sending" if self.claimed_at else "queued"

    def __repr__(self) -> str:
        return f"<Email {self.id} {self.kind} to {self.to_address}>"


class RunningCount(db.Model):
    """A figure of the stats page, kept as rows change rather than counted: ``users``,
    ``posts``, ``words``, ``tags``, and the posts in each tagging state (``tagging:done``,
    ``tagging:`` for none yet). Each tag's posts are its ``post_count``.

    Counting them every minute would read the whole database every minute: every post's
    words, every tag link. So the database keeps them. Its triggers (``COUNT_TRIGGERS``)
    append a ``CountChange`` for every row added or removed and every edit that changes a
    figure, in the same transaction, whatever made it: the ORM, the tagging job's own
    statements, a cascade. ``refresh_stats`` adds the changes into the counts every minute
    and deletes them, so that its work follows that minute's writes, not the size of the
    tables. The triggers only append: were they to update the counts in place, writers would
    queue on the same few rows, and two updating them in opposite orders would deadlock.
    """

    __tablename__ = "running_counts"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)

    @classmethod
    def last_added_up(cls, name: str) -> int | None:
        """The figure as ``refresh_stats`` last added it up (up to a minute behind), or None
        before it first has (a database made without the migrations, as the tests' are)."""
        return db.session.scalar(select(cls.value).where(cls.name == name))


class CountChange(db.Model):
    """A change to a running count (``tag_id`` None) or to a tag's ``post_count``, not added
    in yet."""

    __tablename__ = "count_changes"

    # 64 bits: a busy blog appends millions a day. (SQLite numbers its rows itself, in 64.)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    tag_id: Mapped[int | None] = mapped_column(Integer)
    delta: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class CountTrigger:
    """A trigger that appends rows of ``(name, tag_id, delta)`` to ``count_changes``."""

    name: str
    fires_on: str  # INSERT, DELETE, or UPDATE OF a column
    table: str
    rows: str  # SQL, of NEW (the row as written) and OLD (as it was)
    when: str | None = None

    def statements(self, dialect: str) -> list[str]:
        """What creates it on ``dialect``: on PostgreSQL, a function and the trigger."""
        append = f"INSERT INTO count_changes (name, tag_id, delta) VALUES {self.rows};"
        trigger = f"CREATE TRIGGER {self.name} AFTER {self.fires_on} ON {self.table} FOR EACH ROW"
        if self.when:
            trigger += f" WHEN ({self.when})"
        if dialect == "sqlite":
            return [f"{trigger} BEGIN {append} END"]
        return [
            f"CREATE OR REPLACE FUNCTION {self.name}() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN {append} RETURN NULL; END $$",
            f"{trigger} EXECUTE FUNCTION {self.name}()",
        ]


TAGGING_WAS = "'tagging:' || coalesce(OLD.tagging_state, '')"
TAGGING_IS = "'tagging:' || coalesce(NEW.tagging_state, '')"
COUNT_TRIGGERS = (
    CountTrigger("users_added", "INSERT", "users", "('users', NULL, 1)"),
    CountTrigger("users_removed", "DELETE", "users", "('users', NULL, -1)"),
    CountTrigger("tags_added", "INSERT", "tags", "('tags', NULL, 1)"),
    CountTrigger("tags_removed", "DELETE", "tags", "('tags', NULL, -1)"),
    CountTrigger(
        "posts_added",
        "INSERT",
        "posts",
        f"('posts', NULL, 1), ('words', NULL, NEW.word_count), ({TAGGING_IS}, NULL, 1)",
    ),
    CountTrigger(
        "posts_removed",
        "DELETE",
        "posts",
        f"('posts', NULL, -1), ('words', NULL, -OLD.word_count), ({TAGGING_WAS}, NULL, -1)",
    ),
    CountTrigger(
        "post_words_changed",
        "UPDATE OF word_count",
        "posts",
        "('words', NULL, NEW.word_count - OLD.word_count)",
        when="NEW.word_count <> OLD.word_count",
    ),
    CountTrigger(
        "post_tagging_changed",
        "UPDATE OF tagging_state",
        "posts",
        f"({TAGGING_WAS}, NULL, -1), ({TAGGING_IS}, NULL, 1)",
        when="coalesce(OLD.tagging_state, '') <> coalesce(NEW.tagging_state, '')",
    ),
    CountTrigger("post_tags_added", "INSERT", "post_tags", "('tag', NEW.tag_id, 1)"),
    CountTrigger("post_tags_removed", "DELETE", "post_tags", "('tag', OLD.tag_id, -1)"),
)


@event.listens_for(db.metadata, "after_create")
def _create_count_triggers(metadata, connection, tables, **kw) -> None:
    """``db.create_all()`` (the tests) makes the triggers of the tables it made; for ``flask
    db upgrade``, migration 0003 does."""
    made = {table.name for table in tables}
    for trigger in COUNT_TRIGGERS:
        if trigger.table in made:
            for statement in trigger.statements(connection.dialect.name):
                connection.exec_driver_sql(statement)
