"""One page of a listing: ``POSTS_PER_PAGE`` rows, the page number from ``?page=``."""

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select

from blog.bad_input import page_number
from blog.extensions import db


def paginate(query: Select) -> Pagination:
    """The page of ``query`` the request asks for; a page past the end, or a ``?page=`` that
    is not a page number, is a 404."""
    return db.paginate(query, page=page_number(), per_page=current_app.config["POSTS_PER_PAGE"])
