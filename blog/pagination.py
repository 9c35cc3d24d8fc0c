"""One page of a listing: ``POSTS_PER_PAGE`` rows, the page number from ``?page=``."""

from flask import abort, current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select

from blog.bad_input import page_number
from blog.extensions import db


def paginate(query: Select) -> Pagination:
    """The page of ``query`` the request asks for; a page past the end, or a ``?page=`` that
    is not a page number, is a 404."""
    return db.paginate(query, page=page_number(), per_page=current_app.config["POSTS_PER_PAGE"])


class ListPage:
    """One page of a list that is not a query (jobs in Redis), with what the ``pagination``
    macro of templates/_forms.html reads: ``?page=`` past the last page is a 404."""

    def __init__(self, total: int, per_page: int):
        self.total = total
        self.per_page = per_page
        self.pages = max(1, -(-total // per_page))
        self.page = page_number()
        if self.page > self.pages:
            abort(404)

    @property
    def start(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def end(self) -> int:
        return self.start + self.per_page

    has_prev = property(lambda self: self.page > 1)
    has_next = property(lambda self: self.page < self.pages)
    prev_num = property(lambda self: self.page - 1)
    next_num = property(lambda self: self.page + 1)
