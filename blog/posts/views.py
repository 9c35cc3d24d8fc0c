"""Posts: list, show, write, edit, delete; and the posts under a tag."""

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from blog.extensions import db
from blog.models import AUTHOR, Post, PostTag, Tag
from blog.posts.forms import PostForm, parse_tags

bp = Blueprint("posts", __name__)


def newest_first(query):
    return query.order_by(Post.created_at.desc(), Post.id.desc())


def own_post_or_403(post_id: int) -> Post:
    post = db.get_or_404(Post, post_id)
    if post.author_id != current_user.id:
        abort(403)
    return post


@bp.get("/")
def index():
    page = db.paginate(
        newest_first(select(Post)), per_page=current_app.config["POSTS_PER_PAGE"], max_per_page=50
    )
    return render_template("posts/index.html", page=page)


@bp.get("/tags/<tag_name>")
def by_tag(tag_name: str):
    tag = db.one_or_404(select(Tag).where(Tag.name == Tag.normalise(tag_name)))
    query = newest_first(select(Post).join(PostTag).where(PostTag.tag_id == tag.id))
    page = db.paginate(query, per_page=current_app.config["POSTS_PER_PAGE"], max_per_page=50)
    return render_template("posts/index.html", page=page, tag=tag)


@bp.get("/posts/<int:post_id>")
def show(post_id: int):
    return render_template("posts/show.html", post=db.get_or_404(Post, post_id))


@bp.route("/posts/new", methods=["GET", "POST"])
@login_required
def new():
    form = PostForm()
    if form.validate_on_submit():
        post = Post(author=current_user, title=form.title.data, body=form.body.data)
        db.session.add(post)
        post.set_tags(parse_tags(form.tags.data), AUTHOR)
        db.session.commit()
        flash("Your post is published.", "success")
        return redirect(url_for("posts.show", post_id=post.id))
    return render_template("posts/form.html", form=form, post=None)


@bp.route("/posts/<int:post_id>/edit", methods=["GET", "POST"])
@login_required
def edit(post_id: int):
    post = own_post_or_403(post_id)
    form = PostForm(title=post.title, body=post.body, tags=", ".join(post.tag_names(AUTHOR)))
    if form.validate_on_submit():
        post.title = form.title.data
        post.body = form.body.data
        post.content_version += 1
        post.set_tags(parse_tags(form.tags.data), AUTHOR)
        db.session.commit()
        flash("Your changes are saved.", "success")
        return redirect(url_for("posts.show", post_id=post.id))
    return render_template("posts/form.html", form=form, post=post)


@bp.post("/posts/<int:post_id>/delete")
@login_required
def delete(post_id: int):
    post = own_post_or_403(post_id)
    db.session.delete(post)
    db.session.commit()
    flash("The post is deleted.", "info")
    return redirect(url_for("posts.index"))
