"""The gateway's shared state behind one interface: SQLite for one machine, PostgreSQL (+ Redis) for many replicas.

`open_state(url)` gives the tables (keys, suspensions, held answers, audit) on either database; `redis_shared`
adds what must be shared and fast across replicas (rate limits, revocation and suspension broadcast).
"""

from domainlm.state.db import StateDB, StateError, open_state

__all__ = ["StateDB", "StateError", "open_state"]
