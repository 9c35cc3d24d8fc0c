"""Auto-tagging: the tagger is slow and flaky, so it runs in a job, never in the request."""

import logging

from flask import current_app
from sqlalchemy import update

from blog.extensions import db
from blog.models import TAGGER, Post, PostTag, TaggingState, utcnow
from blog.queues import backoff, enqueue_after_commit
from blog.tagger import Tagger
from workers import in_app_context, is_last_attempt

log = logging.getLogger(__name__)

TAGGING_RETRIES = 3


def tagging_job_id(post: Post) -> str:
    """One job id per version of a post, so that a duplicate enqueue is easy to spot."""
    return f"tag-post-{post.id}-v{post.content_version}"


def schedule_tagging(post: Post) -> None:
    """Mark the post pending and enqueue its tagging once the current transaction commits."""
    if post.id is None:
        db.session.flush()  # the job needs the post's id
    post.mark_tagging(TaggingState.PENDING)
    enqueue_after_commit(
        auto_tag_post,
        post.id,
        queue="default",
        tags=(f"post:{post.id}", f"user:{post.author_id}", "tagging"),
        job_id=tagging_job_id(post),
        retry=backoff(TAGGING_RETRIES),
    )


@in_app_context
def auto_tag_post(post_id: int) -> list[str] | None:
    """Ask the tagger for the post's tags and add them beside the author's.

    Idempotent: the tagger's tags are replaced, not added to, so a second run leaves the same
    tags. If the post was edited while the tagger worked, the result is for an old version and
    is dropped: the edit enqueued a job of its own for the new version.
    """
    post = db.session.get(Post, post_id)
    if post is None:
        log.info("post %s is gone; nothing to tag", post_id)
        return None
    version, title, body = post.content_version, post.title, post.body
    # Release the connection while the slow call runs: no transaction held for seconds.
    db.session.rollback()

    config = current_app.config
    tagger = Tagger(config["TAGGER_LATENCY"], config["TAGGER_FAILURE_RATE"])
    try:
        names = tagger.tags_for(title, body)
    except Exception:
        # Whatever went wrong, the last attempt records it, so that the page says so and
        # requeue_stranded_work does not take the post for lost work. RQ still gets the error.
        if is_last_attempt():
            _finish(post_id, version, TaggingState.FAILED)
        raise
    if _finish(post_id, version, TaggingState.DONE, names):
        log.info("post %s v%s tagged: %s", post_id, version, ", ".join(names) or "(none)")
    else:
        log.info("post %s changed while tagging v%s; dropping the stale tags", post_id, version)
    return names


def _finish(post_id: int, version: int, state: str, names: list[str] | None = None) -> bool:
    """Record the outcome if the post is still at ``version``; False if it moved on.

    The conditional UPDATE comes first: it takes the row's write lock (and SQLite's), so an
    edit cannot slip in between the version check and the tag write. It is a statement on the
    table, as in ``PostTag.replace``: this runs for every post, and the ORM's version of it
    costs twice as much.
    """
    posts = Post.__table__
    still_current = db.session.execute(
        update(posts)
        .where(posts.c.id == post_id, posts.c.content_version == version)
        .values(tagging_state=state, tagging_changed_at=utcnow())
    ).rowcount
    if still_current and names is not None:
        PostTag.replace(post_id, names, TAGGER)
    db.session.commit()
    return bool(still_current)
