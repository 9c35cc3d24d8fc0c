"""Write posts waiting for their tags, with the app's models, and print their ids.

python -m bench.seed 300        # DATABASE_URL names a database `flask db upgrade` made
"""

import sys

from blog import create_app
from blog.extensions import db
from blog.models import Post, TaggingState, User

SENTENCES = (
    "Background jobs keep slow work out of the request.",
    "A message queue between the web app and the worker absorbs bursts of traffic.",
    "Unit testing a job means calling the function with an id.",
    "Rate limiting protects the tagging API from a backlog of retries.",
    "Continuous integration runs the whole suite on every push.",
)


def main() -> None:
    count = int(sys.argv[1])
    app = create_app()
    with app.app_context():
        author = User(email="bench@example.com")
        author.set_password("bench-only-password")
        db.session.add(author)
        db.session.flush()
        posts = []
        for n in range(count):
            body = " ".join(SENTENCES[(n + i) % len(SENTENCES)] for i in range(3))
            post = Post(author_id=author.id, title=f"Bench post {n}", body=body)
            post.mark_tagging(TaggingState.PENDING)
            posts.append(post)
        db.session.add_all(posts)
        db.session.commit()
        print("\n".join(str(post.id) for post in posts))


if __name__ == "__main__":
    main()
