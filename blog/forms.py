"""Form pieces shared by the feature blueprints."""


def strip(value: str | None) -> str | None:
    """A WTForms filter: surrounding white space is never part of a value."""
    return value.strip() if isinstance(value, str) else value
