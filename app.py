"""The WSGI entry point (``gunicorn app:app``) and the app ``flask`` finds by default."""

from blog import create_app
from blog.extensions import db
from blog.models import Email, Post, PostTag, Tag, User

app = create_app()


@app.shell_context_processor
def shell_context() -> dict:
    return {"db": db, "User": User, "Post": Post, "Tag": Tag, "PostTag": PostTag, "Email": Email}
