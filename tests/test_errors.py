from blog import create_app


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
