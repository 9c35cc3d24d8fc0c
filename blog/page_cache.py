"""The front page for visitors who are not signed in: made once after each change to what it
shows, not once per visit.

A visitor who is not signed in sees the same front page as every other such visitor: the
newest posts, their authors and tags. Making it (two queries, ten posts through the ORM and
the templates) costs the web process about ten times what sending a made page does, and it
is the page a crowd arriving from a link reads. So each web process keeps the pages it made
for such visitors, by page number, and sends one again while nothing it shows has changed.

How a process knows: Redis holds a *version* of the posts, a random token. Every commit that
wrote to the posts, their tags or the users, through the session of any process (a web
request, the tagging job, a ``flask`` command), sets a new token once it has committed. A
kept page is sent only while the token it was made under is still the current one, so a
post shows to every visitor from the moment its author is sent to it. The check is one
Redis ``GET`` per visit.

What is never served from here: a signed-in user's page (it has their name and a form token
on it), a page with a message to show (``flash``), a page to a browser that has a "remember
me" cookie (it is about to be signed in). A page is kept at most ``PAGE_CACHE_SECONDS``
(30 s by default; 0 turns the cache off), which bounds how long a change made behind the
session's back (``psql``, a migration) or a version that could not be written (Redis down
for a moment) goes unseen. If Redis does not answer, or lost its data, pages are made for
every visit until it has a version again. The footer's "took N ms" is the time it took to
make the page, when it was made.
"""

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from flask import current_app, has_app_context, request
from flask import session as browser_session
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from blog.bad_input import page_number
from blog.queues import redis_connection

log = logging.getLogger(__name__)

VERSION_KEY = "blog:page-cache:posts-version"
# What the front page shows: a write to any of these makes its kept pages stale.
TABLES = frozenset({"posts", "post_tags", "tags", "users"})
PAGES_KEPT = 100  # per view and process; the least recently sent goes first
CHANGED = "page_cache_changed"  # in Session.info: this transaction wrote to TABLES


@dataclass(frozen=True)
class Page:
    version: bytes
    made_at: float  # time.monotonic()
    body: str


class Pages:
    """The pages one view made, by page number, least recently sent first."""

    def __init__(self) -> None:
        self.pages: OrderedDict[int, Page] = OrderedDict()
        self.lock = threading.Lock()  # gunicorn's gthread workers serve requests in threads

    def get(self, number: int, version: bytes, max_age: float) -> str | None:
        with self.lock:
            page = self.pages.get(number)
            if page is None or page.version != version:
                return None
            if time.monotonic() - page.made_at > max_age:
                del self.pages[number]
                return None
            self.pages.move_to_end(number)
            return page.body

    def put(self, number: int, page: Page) -> None:
        with self.lock:
            self.pages[number] = page
            self.pages.move_to_end(number)
            while len(self.pages) > PAGES_KEPT:
                self.pages.popitem(last=False)


def anonymous_visit() -> bool:
    """A visitor signed in to nothing, about to be signed in by nothing, with no message."""
    remember_cookie = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
    return (
        "_user_id" not in browser_session
        and "_flashes" not in browser_session
        and remember_cookie not in request.cookies
    )


def current_version() -> bytes | None:
    """The posts' version; None when Redis cannot say (the page is then made afresh)."""
    connection = redis_connection()
    try:
        version = connection.get(VERSION_KEY)
        if version is None:  # never set, or Redis lost its data: start a new one
            fresh = uuid.uuid4().hex
            version = fresh.encode() if connection.set(VERSION_KEY, fresh, nx=True) else None
        return version
    except RedisError as error:
        log.warning("page cache skipped: %s", error)
        return None


def for_anonymous_visitors(view: Callable[[], str]) -> Callable[[], str]:
    """A view decorator: keep the pages ``view`` makes for anonymous visitors (above).

    The view takes no arguments but ``?page=``, and returns the page as text.
    """
    name = f"{view.__module__}.{view.__qualname__}"

    @wraps(view)
    def wrapper() -> str:
        max_age = current_app.config["PAGE_CACHE_SECONDS"]
        if not max_age or not anonymous_visit():
            return view()
        version = current_version()
        if version is None:
            return view()
        pages = kept_pages(name)
        number = page_number()
        made_at = time.monotonic()
        body = pages.get(number, version, max_age)
        if body is None:
            body = view()
            pages.put(number, Page(version, made_at, body))
        return body

    return wrapper


def kept_pages(view_name: str) -> Pages:
    """This app's pages of one view: each app its own, whatever Redis it shares."""
    kept = current_app.extensions.setdefault("page_cache", {})
    if view_name not in kept:
        kept[view_name] = Pages()
    return kept[view_name]


def new_version() -> None:
    """Make every kept page stale, in every process."""
    try:
        redis_connection().set(VERSION_KEY, uuid.uuid4().hex)
    except RedisError as error:
        late = current_app.config["PAGE_CACHE_SECONDS"]
        log.warning("page cache version not changed (pages may be %s s late): %s", late, error)


# Any session of any app, so that no writer can forget: the ORM's own writes are seen when
# they are flushed, and statements sent through the session (the tagging job's ``INSERT``s)
# when they are executed.
@event.listens_for(Session, "after_flush")
def _note_flushed_changes(session: Session, flush_context) -> None:
    for instance in (*session.new, *session.dirty, *session.deleted):
        if getattr(instance, "__tablename__", None) in TABLES:
            session.info[CHANGED] = True
            return


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in TABLES:
            state.session.info[CHANGED] = True


@event.listens_for(Session, "after_commit")
def _new_version_after_commit(session: Session) -> None:
    if session.info.pop(CHANGED, False) and has_app_context():
        new_version()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(CHANGED, None)
