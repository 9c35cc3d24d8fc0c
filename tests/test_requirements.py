"""The lock files say what is installed: a clone next year installs what the tests ran on."""

import re
from importlib.metadata import distributions

from tests.dynos import ROOT


def pins(path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.MULTILINE)
    return {canonical(name): version for name, version in found}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_installed_package_is_pinned_at_its_version():
    locked = pins(ROOT / "requirements-dev.txt")
    installed = {
        canonical(d.metadata["Name"]): d.version
        for d in distributions()
        if canonical(d.metadata["Name"]) not in ("pip", "setuptools", "flask-background-jobs")
    }
    assert {name: locked.get(name) for name in installed} == installed


def test_the_runtime_lock_agrees_with_the_development_one():
    runtime, development = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    assert {name: development.get(name) for name in runtime} == runtime
