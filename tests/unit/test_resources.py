"""Per-paglet resource registry."""

from __future__ import annotations

import pytest

from paglets.core.errors import LifecycleError
from paglets.runtime.resources import ResourceCleanupError, ResourceRegistry

pytestmark = pytest.mark.timeout(10)


class Closeable:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1

    def shutdown(self) -> None:
        self.closed += 10


def test_cleanup_runs_in_reverse_registration_order_and_empties_the_registry():
    registry = ResourceRegistry()
    calls: list[str] = []
    for name in ("db", "socket", "file"):
        registry.register(name, lambda name=name: calls.append(name))
    registry.cleanup(reason="dispatch")
    assert calls == ["file", "socket", "db"]
    assert len(registry) == 0


def test_reregistering_a_name_replaces_it_and_makes_it_newest():
    registry = ResourceRegistry()
    calls: list[str] = []
    registry.register("a", lambda: calls.append("a-old"))
    registry.register("b", lambda: calls.append("b"))
    registry.register("a", lambda: calls.append("a-new"))
    registry.cleanup()
    assert calls == ["a-new", "b"]


def test_track_closeable_closes_the_object_and_returns_it():
    registry = ResourceRegistry()
    resource = registry.track_closeable("res", Closeable())
    pool = registry.track_closeable("pool", Closeable(), method="shutdown")
    registry.cleanup()
    assert resource.closed == 1
    assert pool.closed == 10


def test_failing_cleanups_are_reported_together_and_stay_registered():
    registry = ResourceRegistry()
    calls: list[str] = []

    def fail_a() -> None:
        raise OSError("disk gone")

    registry.register("a", fail_a)
    registry.register("ok", lambda: calls.append("ok"))
    registry.register("b", lambda: 1 / 0)
    with pytest.raises(ResourceCleanupError) as info:
        registry.cleanup(reason="dispose")
    error = info.value
    assert isinstance(error, LifecycleError)
    assert set(error.failures) == {"a", "b"}
    assert isinstance(error.failures["a"], OSError)
    assert "disk gone" in str(error) and "ZeroDivisionError" in str(error)
    assert "dispose" in str(error)
    assert calls == ["ok"]
    assert registry.status() == {"a": False, "b": False}


def test_suppressed_failures_are_removed_without_raising():
    registry = ResourceRegistry()
    calls: list[str] = []

    def noisy() -> None:
        calls.append("noisy")
        raise ZeroDivisionError("noisy")

    registry.register("noisy", noisy, suppress=True)
    registry.cleanup()
    assert calls == ["noisy"]  # it did run, and its failure was swallowed
    assert len(registry) == 0


def test_failed_entries_keep_their_place_before_resources_registered_during_cleanup():
    registry = ResourceRegistry()

    def fail_and_register() -> None:
        registry.register("late", lambda: None)
        raise RuntimeError("no")

    registry.register("early", fail_and_register)
    with pytest.raises(ResourceCleanupError):
        registry.cleanup()
    assert list(registry.status()) == ["early", "late"]


def test_remove_forgets_a_resource_without_cleaning_it_up():
    registry = ResourceRegistry()
    resource = registry.track_closeable("res", Closeable())
    assert registry.remove("res")
    assert not registry.remove("res")
    registry.cleanup()
    assert resource.closed == 0


def test_clear_forgets_everything_without_cleanup():
    registry = ResourceRegistry()
    resource = registry.track_closeable("res", Closeable())
    registry.clear()
    registry.cleanup()
    assert resource.closed == 0
    assert len(registry) == 0


def test_status_lists_names_in_registration_order_with_suppress_flags():
    registry = ResourceRegistry()
    registry.register("a", lambda: None)
    registry.register("b", lambda: None, suppress=True)
    assert registry.status() == {"a": False, "b": True}
    assert "a" in registry
    assert len(registry) == 2


def test_empty_name_is_refused():
    with pytest.raises(ValueError):
        ResourceRegistry().register("", lambda: None)


def test_non_callable_cleanup_or_method_is_refused():
    registry = ResourceRegistry()
    with pytest.raises(TypeError):
        registry.register("x", "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="flush"):
        registry.track_closeable("x", Closeable(), method="flush")
    assert len(registry) == 0
