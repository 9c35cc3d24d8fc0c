import pytest
import sqlalchemy as sa

from blog import create_app
from blog.extensions import db
from tests import factories


def test_csrf_is_enforced_on_state_changing_requests(database_config, author_id):
    app = create_app({"TESTING": True, **database_config})
    client = app.test_client()
    response = client.post("/login", data={"email": "ada@example.com", "password": "x"})
    assert response.status_code == 400
    assert b"The form expired" in response.data
    assert client.post("/logout").status_code == 400


def test_unexpected_errors_get_the_500_page(app, client):
    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/boom")
    assert response.status_code == 500
    assert b"Something went wrong" in response.data


def test_method_not_allowed_uses_the_layout(client):
    response = client.delete("/")
    assert response.status_code == 405
    assert b"Method not allowed" in response.data


@pytest.fixture
def kill_database_connection(app):
    """Kill the database connection a request is using, at its ``after``-th statement (and,
    with ``stay_down``, at every statement after that one too).

    PostgreSQL: the server ends the session, as it does on a restart or a failover
    (``pg_terminate_backend``). SQLite has no server: the connection is closed under the
    request, which SQLAlchemy takes for a lost connection too.
    """
    with app.app_context():
        engine = db.engine
    killer = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    armed = {}

    def kill(conn, cursor, statement, parameters, context, executemany):
        armed["seen"] += 1
        if armed["seen"] < armed["after"] or (armed["seen"] > armed["after"] and not armed["stay"]):
            return
        dbapi_connection = conn.connection.dbapi_connection
        if engine.dialect.name == "postgresql":
            with killer.connect() as other:
                pid = dbapi_connection.get_backend_pid()
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        else:
            dbapi_connection.close()

    def arm(after: int, stay_down: bool = False):
        armed.update(seen=0, after=after, stay=stay_down)
        sa.event.listen(engine, "before_cursor_execute", kill)

    yield arm
    if sa.event.contains(engine, "before_cursor_execute", kill):
        sa.event.remove(engine, "before_cursor_execute", kill)
    killer.dispose()


@pytest.fixture
def post_id(app, author_id):
    with app.app_context():
        return factories.post(author_id).id


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "anonymous"])
def test_a_lost_database_connection_gets_the_500_page_in_the_layout(
    app, client, auth, post_id, kill_database_connection, signed_in
):
    if signed_in:
        auth.login()
    app.config["PROPAGATE_EXCEPTIONS"] = False
    kill_database_connection(after=1)  # the post's query: it loads its author, the user, too
    response = client.get(f"/posts/{post_id}")
    assert response.status_code == 500
    assert "<h1>500 · Something went wrong</h1>" in response.text
    assert 'class="site-header"' in response.text
    assert ("ada@example.com" in response.text) is signed_in
    assert ("Log out" in response.text) is signed_in
    # The pool let the dead connection go: the next request is served.
    assert client.get(f"/posts/{post_id}").status_code == 200


def test_with_the_database_down_the_500_page_is_a_minimal_one(
    app, client, auth, post_id, kill_database_connection, caplog
):
    auth.login()
    app.config["PROPAGATE_EXCEPTIONS"] = False
    kill_database_connection(after=1, stay_down=True)  # the layout cannot read the user
    response = client.get(f"/posts/{post_id}")
    assert response.status_code == 500
    assert "<h1>500 · Something went wrong</h1>" in response.text
    assert 'class="site-header"' not in response.text
    assert "the 500 page could not be rendered" in caplog.text
