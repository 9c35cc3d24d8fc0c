"""The WSGI entry point (``gunicorn app:app``) and the app ``flask`` finds by default."""

import sys
from pathlib import Path

from blog import create_app
from blog.auth.views import create_account
from blog.config import check_or_exit
from blog.extensions import db
from blog.models import Email, Post, PostTag, Tag, User
from blog.queues import backoff, enqueue, get_queue
from workers.demo import demo
from workers.mailers import send_email, send_signup_reminder
from workers.maintenance import refresh_stats, requeue_stranded_work
from workers.tagging import auto_tag_post

# A wrong setting is one line naming the variable, not a traceback (gunicorn's workers would
# print one each).
check_or_exit(Path(sys.argv[0]).name)
app = create_app()


@app.shell_context_processor
def shell_context() -> dict:
    """What ``flask shell`` has ready: the database, the models, the queues and the jobs."""
    return {
        "db": db,
        "User": User,
        "Post": Post,
        "Tag": Tag,
        "PostTag": PostTag,
        "Email": Email,
        "get_queue": get_queue,
        "enqueue": enqueue,
        "backoff": backoff,
        "create_account": create_account,
        "demo": demo,
        "auto_tag_post": auto_tag_post,
        "send_email": send_email,
        "send_signup_reminder": send_signup_reminder,
        "refresh_stats": refresh_stats,
        "requeue_stranded_work": requeue_stranded_work,
    }
