"""A small Flask app on the Redis session recipe (recipe.py), for testing
that sessionkit's Flask-recipe compatibility mode shares sessions with it.

Configured from the environment:
  REDIS_URL            redis://127.0.0.1:PORT[/DB] (default redis://127.0.0.1:6379/0)
  PORT                 the loopback port to serve on (default 5000)
  SESSION_PREFIX       the Redis key prefix (default "session:")
  SESSION_COOKIE_NAME  the session cookie's name (default "session")
  SECRET_KEY           Flask's secret key (the recipe does not sign anything)

Every route is a GET answering 200 with plain text or JSON; /health (for
readiness) never opens a session and only PINGs Redis. Started by
testkit::flask::FlaskApp.
"""

import os
import sys
from urllib.parse import urlparse

from flask import Flask, Response, flash, get_flashed_messages, jsonify, request, session
from redis import Redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recipe import RedisSessionInterface  # noqa: E402


def redis_from_url(url):
    u = urlparse(url)
    db = u.path.strip("/")
    return Redis(u.hostname or "127.0.0.1", u.port or 6379, db=int(db) if db else 0)


class Health:
    """Answers GET /health before Flask opens a session: the recipe would
    otherwise send Redis a DEL of a fresh, empty session's key on every
    call. A Redis PING instead (503 if Redis does not answer), then "ok"."""

    def __init__(self, wsgi_app, redis):
        self.wsgi_app = wsgi_app
        self.redis = redis

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != "/health":
            return self.wsgi_app(environ, start_response)
        try:
            self.redis.ping()
            status, body = "200 OK", b"ok"
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            status, body = "503 Service Unavailable", f"redis: {e}".encode()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(body)))])
        return [body]


redis_client = redis_from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "sessionkit-testkit-flask")
app.config["SESSION_COOKIE_NAME"] = os.environ.get("SESSION_COOKIE_NAME", "session")
app.session_interface = RedisSessionInterface(
    redis_client, prefix=os.environ.get("SESSION_PREFIX", "session:")
)
app.wsgi_app = Health(app.wsgi_app, redis_client)


def text(body):
    return Response(body, status=200, mimetype="text/plain")


@app.get("/login")
def login():
    session["user"] = request.args.get("user", "")
    return text("ok")


@app.get("/whoami")
def whoami():
    return text(session.get("user", ""))


@app.get("/cart")
def cart():
    return jsonify(session.get("cart", []))


@app.get("/cart/add")
def cart_add():
    # Reassigned, not appended to: the session (a CallbackDict) sees only
    # its own keys being set.
    session["cart"] = session.get("cart", []) + [request.args.get("item", "")]
    return jsonify(session["cart"])


@app.get("/flash")
def do_flash():
    flash(request.args.get("msg", ""), request.args.get("category", "message"))
    return text("ok")


@app.get("/flashes")
def flashes():
    return jsonify([[c, m] for c, m in get_flashed_messages(with_categories=True)])


@app.get("/permanent")
def permanent():
    session.permanent = True
    return text("ok")


@app.get("/logout")
def logout():
    session.clear()
    return text("ok")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")), threaded=True)
