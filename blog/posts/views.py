"""Posts: list, show, write, edit, delete; and the posts under a tag."""

import time

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from blog import page_cache
from blog.extensions import db
from blog.models import AUTHOR, Post, PostTag, RunningCount, Tag
from blog.pagination import paginate
from blog.posts.forms import PostForm, parse_tags
from blog.tagger import TaggerUnavailable
from blog.timing import request_duration_ms
from workers.tagging import auto_tag_post, schedule_tagging

bp = Blueprint("posts", __name__)

# Seconds a web process goes on with the number of posts it last read (``posts_total``).
POST_COUNT_SECONDS = 5


def newest_first(query):
    """Newest first, with each post's author and tags loaded in two more queries, not two a
    post."""
    return query.order_by(Post.created_at.desc(), Post.id.desc()).options(
        joinedload(Post.author), selectinload(Post.tag_links)
    )


def own_post_or_403(post_id: int) -> Post:
    post = db.get_or_404(Post, post_id)
    if post.author_id != current_user.id:
        abort(403)
    return post


def tagging_inline() -> bool:
    """``TAGGING_MODE=inline``, or the form's "tag inside this request" box in development."""
    config = current_app.config
    return config["TAGGING_MODE"] == "inline" or (
        config["APP_ENV"] == "development" and request.form.get("tag_inline") == "1"
    )


def save_and_tag(post: Post) -> str:
    """Commit the post and have it tagged: by a job (the point of this app), or inline.
    Return how long that took, for the user to see.

    Inline, the user waits for the slow tagger; from the queue, the response leaves at once
    and the tags arrive a moment later.
    """
    if not tagging_inline():
        schedule_tagging(post)
        db.session.commit()
        return f"Saving took {request_duration_ms():,.0f} ms; the tagger works in the background."
    db.session.commit()
    try:
        auto_tag_post(post.id)
    except TaggerUnavailable:
        flash(
            "The tagger failed, so this post has only your tags for now. "
            "(A job would have retried it.)",
            "warning",
        )
    return f"Saving took {request_duration_ms():,.0f} ms, as the tagger ran inside the request."


def posts_total() -> int | None:
    """The number of posts for the front page's "page 1 of N": the running count, which is up
    to a minute behind, read by each web process at most every ``POST_COUNT_SECONDS``, so that
    the busiest page makes one query fewer. (None before the count is first added up.)"""
    cached = current_app.extensions.get("posts_total")
    now = time.monotonic()
    if cached is None or cached[1] < now:
        cached = (RunningCount.last_added_up("posts"), now + POST_COUNT_SECONDS)
        current_app.extensions["posts_total"] = cached
    return cached[0]


@bp.get("/")
@page_cache.for_anonymous_visitors
def index():
    # Counting every post for "page 1 of N" would read the whole table on every visit: the
    # running count is a minute late at most, and the page's own rows are always current.
    page = paginate(newest_first(select(Post)), total=posts_total())
    return render_template("posts/index.html", page=page)


@bp.get("/tags/<tag_name>")
def by_tag(tag_name: str):
    tag = db.one_or_404(select(Tag).where(Tag.name == Tag.normalise(tag_name)))
    query = newest_first(select(Post).join(PostTag).where(PostTag.tag_id == tag.id))
    page = paginate(query)
    return render_template("posts/index.html", page=page, tag=tag)


@bp.get("/posts/<int:post_id>")
def show(post_id: int):
    # The post, its author and its tags in one query, not three.
    loaded = [joinedload(Post.author), joinedload(Post.tag_links)]
    post = db.get_or_404(Post, post_id, options=loaded)
    return render_template("posts/show.html", post=post)


@bp.get("/posts/<int:post_id>/tags.json")
def tags_status(post_id: int):
    """The post's tags and tagging state; the post page polls this while tagging is pending."""
    post = db.get_or_404(Post, post_id)
    changed_at = post.tagging_changed_at
    return jsonify(
        state=post.tagging_state,
        changed_at=changed_at.isoformat() if changed_at else None,
        tags=[
            {
                "name": link.tag.name,
                "source": link.source,
                "url": url_for("posts.by_tag", tag_name=link.tag.name),
            }
            for link in post.tags
        ],
    )


@bp.route("/posts/new", methods=["GET", "POST"])
@login_required
def new():
    form = PostForm()
    if form.validate_on_submit():
        post = Post(author=current_user, title=form.title.data, body=form.body.data)
        db.session.add(post)
        post.set_tags(parse_tags(form.tags.data), AUTHOR)
        # Before the commit, which expires the post: after it, post.id would read it again.
        location = url_for("posts.show", post_id=post.id)
        flash(f"Your post is published. {save_and_tag(post)}", "success")
        return redirect(location)
    return render_template("posts/form.html", form=form, post=None)


@bp.route("/posts/<int:post_id>/edit", methods=["GET", "POST"])
@login_required
def edit(post_id: int):
    post = own_post_or_403(post_id)
    form = PostForm(title=post.title, body=post.body, tags=", ".join(post.tag_names(AUTHOR)))
    if form.validate_on_submit():
        post.edit(form.title.data, form.body.data)
        post.set_tags(parse_tags(form.tags.data), AUTHOR)
        flash(f"Your changes are saved. {save_and_tag(post)}", "success")
        return redirect(url_for("posts.show", post_id=post.id))
    return render_template("posts/form.html", form=form, post=post)


@bp.route("/posts/<int:post_id>/delete", methods=["GET", "POST"])
@login_required
def delete(post_id: int):
    """GET asks "are you sure?" on a page of its own, so it works without JavaScript; the
    POST from that page deletes."""
    post = own_post_or_403(post_id)
    if request.method == "GET":
        return render_template("posts/delete.html", post=post)
    db.session.delete(post)
    db.session.commit()
    flash("The post is deleted.", "info")
    return redirect(url_for("posts.index"))
