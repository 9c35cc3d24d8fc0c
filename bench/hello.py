"""The ceiling of the web rows: a Flask app that answers "Hello" and does nothing else, run
under the same gunicorn settings as the blog (``gunicorn --config gunicorn.conf.py
bench.hello:app``). What the blog does per request costs the difference."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello"
