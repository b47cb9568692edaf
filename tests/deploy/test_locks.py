"""Builds are reproducible: every Python package, transitive ones included, at one version with its hashes, and the
image and `make` install from those locks alone."""

import re
import tomllib

import pytest
from packaging.requirements import Requirement

from libs.settings import PROJECT_ROOT

LOCKS = PROJECT_ROOT / "requirements"


def locked(name: str) -> dict[str, tuple[str, list[str]]]:
    """Package -> (version, hashes) of a lock file."""
    text = (LOCKS / name).read_text()
    found = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9_.-]+)==([^\s\\;]+)", block)
        if head:
            found[_normal(head.group(1))] = (head.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(*extras: str) -> dict[str, str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for extra in extras for d in project["optional-dependencies"][extra]]
    out = {}
    for line in wanted:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{line}: pyproject.toml pins every direct dependency"
        out[_normal(requirement.name)] = spec.version
    return out


@pytest.mark.parametrize(("lock", "extras"), [("service.lock", ()), ("dev.lock", ("embedded", "dev"))])
def test_each_lock_holds_every_pin_of_pyproject_at_its_version_and_every_package_with_hashes(lock, extras):
    packages = locked(lock)
    assert {name: packages.get(name, ("missing",))[0] for name in pins(*extras)} == pins(*extras), (
        "run `make lock` after changing pyproject.toml"
    )
    assert len(packages) > len(pins(*extras)), "the transitive dependencies are locked too"
    assert [name for name, (_, hashes) in packages.items() if not hashes] == []


def test_the_service_lock_is_the_dev_lock_s_part():
    service, dev = locked("service.lock"), locked("dev.lock")
    assert {name: dev.get(name, ("missing",))[0] for name in service} == {n: v for n, (v, _) in service.items()}


def test_the_image_and_make_install_from_the_locks_with_their_hashes():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r service.lock" in dockerfile and "--no-deps ." in dockerfile
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements/dev.lock" in makefile and "--no-deps -e ." in makefile
