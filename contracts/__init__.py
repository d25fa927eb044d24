"""What every role shares, in one neutral home: the Redis key layout (``rediskeys``), the
response body (``response``), the user-ID rule (``userid``), the A/B assignment (``ab``), the
request-log record (``requestrecord``), the environment parser (``env``) and the variables
several processes read (``locations``).

Standard library only, so the service image, the pipeline and the tools all import it
without pulling in each other's dependencies; it imports no other package of this project
(an import-linter contract in ``pyproject.toml`` keeps both true).
"""
