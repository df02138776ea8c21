"""The embedded simulator: Together's fine-tuning API, computed from a SQLite store.

A job's state at any moment is a pure function of what was stored at creation (the request, the
loss curve, the speed) and of the clock (``timeline``); nothing runs in the background.
"""
