"""What the portal installs is pinned to the hash: the locks hold every package with its hashes,
they agree with the lists people edit (requirements*.in), and the Makefile requires the hashes."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.M)


def name(package: str) -> str:
    return re.sub(r"[-_.]+", "-", package).lower()


def locked(lock: str) -> dict[str, str]:
    """{package: version} of a lock, each checked to carry at least one hash."""
    # A requirement starts a line; its hashes and "# via" notes are indented below it.
    lines = [line for line in (ROOT / lock).read_text().splitlines() if not line.startswith("#")]
    blocks = re.split(r"\n(?=\S)", "\n".join(lines).strip())
    pins = {}
    for block in blocks:
        found = PIN.match(block)
        assert found, f"{lock}: not a pinned requirement: {block.splitlines()[0]}"
        assert "--hash=sha256:" in block, f"{lock}: {found.group(1)} has no hash"
        pins[name(found.group(1))] = found.group(2)
    return pins


def listed(source: str) -> dict[str, str]:
    return {name(p): v for p, v in PIN.findall((ROOT / source).read_text())}


@pytest.mark.parametrize(
    ("source", "lock"),
    [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")],
)
def test_every_listed_package_is_locked_at_its_version_with_hashes(source, lock):
    pins = locked(lock)
    assert len(pins) > len(listed(source))  # what they pull in is locked too
    for package, version in listed(source).items():
        assert pins.get(package) == version, f"{package}: run make lock"


def test_the_dev_lock_holds_the_runtime_lock_as_it_is():
    runtime, dev = locked("requirements.txt"), locked("requirements-dev.txt")
    assert {package: dev.get(package) for package in runtime} == runtime
    assert set(listed("requirements.in")) <= set(runtime)


def test_the_makefile_installs_with_hashes_required():
    installs = re.findall(r"pip install[^\n]*", (ROOT / "Makefile").read_text())
    assert installs and all("--require-hashes" in line for line in installs)


def test_tools_only_the_tests_use_are_dev_dependencies():
    package = json.loads((ROOT / "package.json").read_text())
    assert "axe-core" in package["devDependencies"]
    assert "axe-core" not in package["dependencies"]
