"""The hook spec is the contract: every hook is typed and documented (datasette-style check)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from swapio import hookspecs

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("Errors", "Concurrency", "Durability")


def _hooks() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "swapio_spec")
    ]


def test_every_declared_hook_is_a_spec() -> None:
    assert set(_hooks()) == set(hookspecs.DATA_HOOKS) | set(hookspecs.REGISTRATION_HOOKS)


@pytest.mark.parametrize("name", _hooks())
def test_hook_has_docstring_with_params_and_return(name: str) -> None:
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    assert len(doc) > 80, f"{name} is undocumented"
    for param in inspect.signature(fn).parameters:
        assert param in doc, f"{name}: parameter {param!r} not documented"


@pytest.mark.parametrize("name", _hooks())
def test_hook_is_fully_annotated(name: str) -> None:
    sig = inspect.signature(getattr(hookspecs, name))
    assert sig.return_annotation is not inspect.Signature.empty
    for param in sig.parameters.values():
        assert param.annotation is not inspect.Parameter.empty, f"{name}.{param.name}"


@pytest.mark.parametrize("name", ["swapfile", "swap_out", "swap_in"])
def test_data_hooks_state_errors_and_concurrency(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert "Errors" in doc
    assert "Concurrency" in doc or "concurrently" in doc


@pytest.mark.parametrize("name", hookspecs.DATA_HOOKS)
def test_data_hooks_are_async(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(hookspecs, name))


@pytest.mark.parametrize("name", _hooks())
def test_hook_is_documented_for_plugin_authors(name: str) -> None:
    text = (ROOT / "docs" / "plugin-authors.md").read_text()
    sig = inspect.signature(getattr(hookspecs, name))
    assert f"{name}({', '.join(sig.parameters)})" in text, (
        f"docs/plugin-authors.md lacks the signature of hook {name}"
    )
