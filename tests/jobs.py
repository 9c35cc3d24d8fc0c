"""Job functions for tests: importable by the worker, like the app's own."""


class Failure(Exception):
    """Raised on purpose."""


def fail_with(message: str) -> None:
    raise Failure(message)
