"""Small factories for test data; call them inside an app context."""

from itertools import count

from blog.extensions import db
from blog.models import AUTHOR, Post, User

PASSWORD = "correct horse battery"
_serial = count(1)


def user(email: str | None = None, password: str = PASSWORD, admin: bool = False) -> User:
    user = User(email=email or f"user{next(_serial)}@example.com", is_admin=admin)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def post(author_id: int, title: str | None = None, body: str = "Some words.", tags=()) -> Post:
    post = Post(author_id=author_id, title=title or f"Post {next(_serial)}", body=body)
    db.session.add(post)
    post.set_tags(list(tags), AUTHOR)
    db.session.commit()
    return post
