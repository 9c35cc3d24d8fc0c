from sqlalchemy import select

from blog.extensions import db
from blog.models import AUTHOR, TAGGER, Post, PostTag, Tag
from tests import factories


def test_tagger_tags_never_replace_the_authors(app_ctx, author_id):
    post = factories.post(author_id, tags=["python", "flask"])
    post.set_tags(["flask", "redis"], TAGGER)
    db.session.commit()
    assert post.tag_names(AUTHOR) == ["flask", "python"]
    assert post.tag_names(TAGGER) == ["redis"]


def test_setting_the_same_tags_twice_changes_nothing(app_ctx, author_id):
    post = factories.post(author_id)
    post.set_tags(["redis", "rq"], TAGGER)
    db.session.commit()
    post.set_tags(["redis", "rq"], TAGGER)
    db.session.commit()
    assert [(link.tag.name, link.source) for link in post.tags] == [
        ("redis", TAGGER),
        ("rq", TAGGER),
    ]
    assert db.session.query(Tag).count() == 2


def test_new_tagger_tags_replace_old_tagger_tags(app_ctx, author_id):
    post = factories.post(author_id, tags=["mine"])
    post.set_tags(["old"], TAGGER)
    db.session.commit()
    post.set_tags(["new"], TAGGER)
    db.session.commit()
    assert post.tag_names() == ["mine", "new"]


def test_author_takes_over_a_tagger_tag(app_ctx, author_id):
    post = factories.post(author_id)
    post.set_tags(["redis"], TAGGER)
    db.session.commit()
    post.set_tags(["redis"], AUTHOR)
    db.session.commit()
    assert post.tag_names(AUTHOR) == ["redis"]
    assert post.tag_names(TAGGER) == []


def test_tags_are_shared_between_posts(app_ctx, author_id):
    factories.post(author_id, tags=["redis"])
    factories.post(author_id, tags=["redis"])
    assert db.session.query(Tag).count() == 1


def test_tag_ids_come_in_the_names_order_and_only_missing_tags_are_created(app_ctx):
    redis_id, flask_id = Tag.ids(["redis", "flask"])
    ids = Tag.ids(["flask", "rq", "redis", "flask"])
    assert ids[0] == flask_id and ids[2] == redis_id and len(ids) == 3
    assert db.session.query(Tag).count() == 3


def test_deleting_a_post_removes_its_tag_links(app_ctx, author_id):
    post = factories.post(author_id, tags=["redis"])
    db.session.delete(post)
    db.session.commit()
    assert db.session.query(Post).count() == 0
    assert db.session.query(PostTag).count() == 0
    assert db.session.scalars(select(Tag.name)).all() == ["redis"]


def test_datetimes_come_back_timezone_aware(app_ctx, author_id):
    post = factories.post(author_id)
    db.session.expire_all()
    assert db.session.get(Post, post.id).created_at.tzinfo is not None
