"""The development mailbox at /dev/mail."""

from blog import create_app
from tests.support import html


def test_the_mailbox_lists_the_email_the_app_wrote(client, auth, run_jobs):
    auth.signup("new@example.com")
    page = client.get("/dev/mail/").get_data(as_text=True)
    assert "new@example.com" in page
    assert "Welcome to Flask Background Jobs" in page
    (row,) = [row for row in html.rows(page) if "new@example.com" in row]
    assert "welcome" in row and "queued" in row
    run_jobs()
    (row,) = [row for row in html.rows(client.get("/dev/mail/").text) if "new@example.com" in row]
    assert "sent" in row


def test_a_message_shows_its_text_and_its_html_in_a_sandbox(client, auth):
    auth.signup("new@example.com")
    page = client.get("/dev/mail/1").get_data(as_text=True)
    assert "Your account for new@example.com is ready." in page
    assert "<iframe" in page and " sandbox " in page
    # The HTML part is an attribute's value here, escaped: it cannot close the attribute.
    assert 'srcdoc="&lt;!doctype html&gt;' in page
    assert "Message-ID" in page


def test_an_unknown_message_is_a_404(client):
    assert client.get("/dev/mail/99").status_code == 404


def test_the_footer_links_to_the_mailbox(client):
    assert b'href="/dev/mail/"' in client.get("/").data


def test_without_the_dev_mailbox_there_is_no_mailbox(database_config):
    app = create_app({"TESTING": True, "DEV_MAILBOX": False, **database_config})
    client = app.test_client()
    assert client.get("/dev/mail/").status_code == 404
    assert b"/dev/mail" not in client.get("/login").data
