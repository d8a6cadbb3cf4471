"""pyproject.toml, constraints.txt and constraints-min.txt agree with each other."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pins(name: str) -> dict[str, Version]:
    pins = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pkg, _, version = line.partition("==")
            pins[canonicalize_name(pkg)] = Version(version)
    return pins


def _requirements(*extras: str) -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    return [r for r in reqs if canonicalize_name(r.name) != "hapa-telemetry"]


def _floor(req: Requirement) -> Version:
    floors = [Version(s.version) for s in req.specifier if s.operator == ">="]
    assert len(floors) == 1, f"{req}: one floor (>=) expected"
    return floors[0]


def test_every_dependency_has_a_floor_and_min_constraints_pin_it_exactly() -> None:
    """Each runtime dependency (and the demo/es extras) declares a floor, and
    constraints-min.txt installs exactly that floor, so CI tests the lower bound."""
    mins = _pins("constraints-min.txt")
    for req in _requirements("demo", "es"):
        assert mins.get(canonicalize_name(req.name)) == _floor(req), req


def test_opentelemetry_ranges_are_capped() -> None:
    """OpenTelemetry packages carry an upper bound (the logs SDK is a private module and
    contrib betas pin the SDK minor), and constraints.txt's pins fall inside them."""
    pins = _pins("constraints.txt")
    for req in _requirements():
        if req.name.startswith("opentelemetry-"):
            assert any(s.operator == "<" for s in req.specifier), f"{req}: no cap"
            assert pins[canonicalize_name(req.name)] in req.specifier, req


def test_constraints_pin_every_dependency_inside_its_range() -> None:
    """constraints.txt pins every declared dependency of every extra, within range."""
    pins = _pins("constraints.txt")
    for req in _requirements("demo", "es", "dev", "bench"):
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pin, prereleases=True), f"{req} vs =={pin}"


def test_constraints_hold_no_stale_pins() -> None:
    """Every pin in constraints.txt is installed at that version in the bootstrapped
    venv (bench extras and the build backend aside), so nothing stale stays pinned."""
    pins = _pins("constraints.txt")
    try:
        sdk = Version(metadata.version("opentelemetry-sdk"))
    except metadata.PackageNotFoundError:
        pytest.skip("opentelemetry-sdk is not installed")
    if sdk != pins[canonicalize_name("opentelemetry-sdk")]:
        pytest.skip("not the pinned venv (e.g. the constraints-min.txt run)")
    on_demand = {canonicalize_name(r.name) for r in _requirements("bench")} - {
        canonicalize_name(r.name) for r in _requirements("dev")
    }
    build_system = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]
    # the build backend is installed in `python -m build`'s isolated env, not the venv
    on_demand |= {canonicalize_name(Requirement(r).name) for r in build_system["requires"]}
    stale = []
    for name, version in pins.items():
        if name in on_demand:
            continue
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            stale.append(f"{name} (not installed)")
            continue
        if installed != version:
            stale.append(f"{name}: pinned {version}, installed {installed}")
    assert stale == []


def test_python_claim_matches_the_checked_version() -> None:
    """requires-python claims what lint and type checks target (3.11)."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]
    assert PROJECT["requires-python"] == ">=3.11"
    assert tool["ruff"]["target-version"] == "py311"
    assert tool["mypy"]["python_version"] == "3.11"
