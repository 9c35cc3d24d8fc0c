from blog.extensions import db
from blog.models import User


def test_create_user_with_password(runner, app):
    result = runner.invoke(
        args=["users", "create", "Admin@Example.com", "--admin", "--password", "a long password"]
    )
    assert result.exit_code == 0, result.output
    assert "Created admin admin@example.com" in result.output
    with app.app_context():
        user = User.by_email("admin@example.com")
        assert user.is_admin and user.check_password("a long password")


def test_create_user_prompts_for_the_password(runner, app):
    result = runner.invoke(
        args=["users", "create", "ada@example.com"], input="a long password\na long password\n"
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert not User.by_email("ada@example.com").is_admin


def test_create_user_refuses_a_duplicate(runner, app, author_id):
    result = runner.invoke(args=["users", "create", "ada@example.com", "--password", "x" * 10])
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_create_user_refuses_bad_input(runner, app):
    result = runner.invoke(args=["users", "create", "nobody", "--password", "x" * 10])
    assert result.exit_code == 2 and "EMAIL" in result.output
    result = runner.invoke(args=["users", "create", "a@example.com", "--password", "short"])
    assert result.exit_code == 2 and "A password has 8 to 200 characters." in result.output
    with app.app_context():
        assert db.session.query(User).count() == 0


def test_flask_shell_has_the_database_models_queues_and_jobs_ready():
    import app as entry_point

    context = entry_point.shell_context()
    names = ("db", "User", "Post", "Email", "get_queue", "backoff", "demo", "create_account")
    for name in names:
        assert name in context


def test_promote_makes_an_existing_user_an_admin(runner, app, author_id):
    result = runner.invoke(args=["users", "promote", "ADA@example.com"])
    assert result.exit_code == 0 and "ada@example.com is now an admin." in result.output
    with app.app_context():
        assert User.by_email("ada@example.com").is_admin
    runner.invoke(args=["users", "promote", "ada@example.com", "--revoke"])
    with app.app_context():
        assert not User.by_email("ada@example.com").is_admin
    result = runner.invoke(args=["users", "promote", "nobody@example.com"])
    assert result.exit_code == 1 and "There is no user" in result.output


def test_before_the_first_migration_the_error_says_what_to_do(runner, app):
    with app.app_context():
        db.drop_all()
    result = runner.invoke(args=["users", "create", "a@example.com", "--password", "x" * 10])
    assert result.exit_code == 1
    assert "flask db upgrade" in result.output and "scrypt" not in result.output
    assert "pbkdf2" not in result.output
    with app.app_context():
        db.create_all()
