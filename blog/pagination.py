"""One page of a listing: ``POSTS_PER_PAGE`` rows, the page number from ``?page=``; or one
page of a list already in memory (the jobs admin's)."""

from collections.abc import Sequence
from dataclasses import dataclass

from flask import abort, current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select

from blog.bad_input import page_number
from blog.extensions import db


def paginate(query: Select, total: int | None = None) -> Pagination:
    """The page of ``query`` the request asks for; a page past the end, or a ``?page=`` that
    is not a page number, is a 404. The number of pages comes from ``total`` when given (a
    count kept elsewhere), else from a ``COUNT`` of ``query``."""
    page = db.paginate(
        query,
        page=page_number(),
        per_page=current_app.config["POSTS_PER_PAGE"],
        count=total is None,
    )
    if total is not None:
        page.total = total
    return page


@dataclass
class ListPage:
    """One page of a list held in memory, with what the ``pagination`` macro of
    ``templates/_forms.html`` reads (as Flask-SQLAlchemy's ``Pagination`` has it)."""

    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def paginate_list(items: Sequence, per_page: int) -> ListPage:
    """The page of ``items`` the request asks for (``?page=``); a page past the end, or a
    ``?page=`` that is not a page number, is a 404, as in ``paginate``."""
    page = page_number()
    start = (page - 1) * per_page
    if page > 1 and start >= len(items):
        abort(404)
    return ListPage(list(items[start : start + per_page]), page, per_page, len(items))
