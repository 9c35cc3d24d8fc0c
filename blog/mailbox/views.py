"""The development mailbox at /dev/mail: every email the app wrote, newest first.

It shows everyone's email to anyone, so ``create_app`` registers it outside production only.
"""

from flask import Blueprint, render_template
from sqlalchemy import select

from blog.extensions import db
from blog.models import Email
from blog.pagination import paginate
from blog.security_headers import SITE_POLICY, with_policy

bp = Blueprint("mailbox", __name__, url_prefix="/dev/mail")


@bp.get("/")
def index():
    query = select(Email).order_by(Email.created_at.desc(), Email.id.desc())
    page = paginate(query)
    return render_template("mailbox/index.html", page=page)


# The message's HTML shows in a sandboxed frame, which keeps this page's policy: emails
# carry their styles inline.
MAIL_POLICY = {**SITE_POLICY, "style-src": "'self' 'unsafe-inline'"}


@bp.get("/<int:email_id>")
@with_policy(MAIL_POLICY)
def show(email_id: int):
    return render_template("mailbox/show.html", email=db.get_or_404(Email, email_id))
