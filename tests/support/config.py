"""The config every test app starts from (the ``app`` fixture and tests that make their own)."""

TEST_CONFIG = {
    "TESTING": True,
    "WTF_CSRF_ENABLED": False,
    "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    # Never connected to: each test app gets an in-memory Redis (fakeredis) instead, and the
    # tests marked integration the real one (the live_redis fixture).
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "JOBS_MODE": "redis",
    "TAGGER_LATENCY": 0,
    "TAGGER_FAILURE_RATE": 0,
    "RETRY_BACKOFF_FACTOR": 0,
    "MAIL_URL": "",  # never a real SMTP server from the developer's .env
    "RATELIMIT_STORAGE_URI": "memory://",
}
