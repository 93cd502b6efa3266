# Server-side Sessions with Redis: Armin Ronacher's Flask snippet (Flask
# snippet 75), as published, so that the Rust side is tested against what
# apps that copied the recipe really store.
#
# Fixes for Flask 3.x / redis-py 5+, each marked `# FIX:` below, and nothing
# else changed:
#   1. `app.session_cookie_name` is gone (removed in Flask 2.3): read the name
#      with `self.get_cookie_name(app)` (SESSION_COOKIE_NAME) instead.
#   2. redis-py 3+ takes `setex(name, time, value)`, not the old
#      `setex(name, value, time)` of the `Redis` class of redis-py 2.
# A missing cookie needs no fix: the recipe already opens a new session then.

import pickle
from datetime import timedelta
from uuid import uuid4
from redis import Redis
from werkzeug.datastructures import CallbackDict
from flask.sessions import SessionInterface, SessionMixin


class RedisSession(CallbackDict, SessionMixin):

    def __init__(self, initial=None, sid=None, new=False):
        def on_update(self):
            self.modified = True
        CallbackDict.__init__(self, initial, on_update)
        self.sid = sid
        self.new = new
        self.modified = False


class RedisSessionInterface(SessionInterface):
    serializer = pickle
    session_class = RedisSession

    def __init__(self, redis=None, prefix='session:'):
        if redis is None:
            redis = Redis()
        self.redis = redis
        self.prefix = prefix

    def generate_sid(self):
        return str(uuid4())

    def get_redis_expiration_time(self, app, session):
        if session.permanent:
            return app.permanent_session_lifetime
        return timedelta(days=1)

    def open_session(self, app, request):
        # FIX: was `request.cookies.get(app.session_cookie_name)`
        sid = request.cookies.get(self.get_cookie_name(app))
        if not sid:
            sid = self.generate_sid()
            return self.session_class(sid=sid, new=True)
        val = self.redis.get(self.prefix + sid)
        if val is not None:
            data = self.serializer.loads(val)
            return self.session_class(data, sid=sid)
        return self.session_class(sid=sid, new=True)

    def save_session(self, app, session, response):
        domain = self.get_cookie_domain(app)
        if not session:
            self.redis.delete(self.prefix + session.sid)
            if session.modified:
                # FIX: was `response.delete_cookie(app.session_cookie_name,`
                response.delete_cookie(self.get_cookie_name(app),
                                       domain=domain)
            return
        redis_exp = self.get_redis_expiration_time(app, session)
        cookie_exp = self.get_expiration_time(app, session)
        val = self.serializer.dumps(dict(session))
        # FIX: was `self.redis.setex(self.prefix + session.sid, val,
        #                            int(redis_exp.total_seconds()))`
        self.redis.setex(self.prefix + session.sid,
                         int(redis_exp.total_seconds()), val)
        # FIX: was `response.set_cookie(app.session_cookie_name, session.sid,`
        response.set_cookie(self.get_cookie_name(app), session.sid,
                            expires=cookie_exp, httponly=True,
                            domain=domain)
