"""Itineraries: a route a paglet follows, kept in its state.

The plan is a dataclass that lives in the paglet's state (by default in a
field named ``itinerary``), so route progress moves with the paglet and
survives every dispatch. A typical paglet drives its route from ``run()``::

    @dataclass
    class TourState(PagletState):
        itinerary: ItineraryPlan = field(default_factory=ItineraryPlan)
        seen: list[str] = field(default_factory=list)

    class Tourist(ItineraryAgentMixin, Paglet[TourState]):
        State = TourState

        def run(self):
            self.state.seen.append(self.context.name)
            self.go_to_next_destination()   # None once the route is done

The plan advances *before* the paglet leaves (the state that travels already
points at the next stop) and steps back if the move fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXECUTE_ON_ARRIVAL = "arrival"
EXECUTE_ON_DISPATCH = "dispatch"
EXECUTE_ON_DEFAULT = EXECUTE_ON_ARRIVAL
_EXECUTE_MODES = (EXECUTE_ON_ARRIVAL, EXECUTE_ON_DISPATCH)
DEFAULT_TASK_STOP = "*"  # the destination a default task is recorded under: every stop


@dataclass
class ItineraryPlan:
    """An ordered list of destinations (node addresses or names) and how far along it the paglet is."""

    destinations: list[str] = field(default_factory=list)
    current_index: int = 0
    completed: bool = False
    visited_destinations: list[str] = field(default_factory=list)

    def add_destination(self, destination: str) -> None:
        """Append a stop at the end of the route."""
        self.destinations.append(_check_destination(destination))
        self.completed = False

    def add_next_destination(self, destination: str) -> None:
        """Insert a stop so it is the next one visited."""
        self.destinations.insert(self.current_index, _check_destination(destination))
        self.completed = False

    def next_destination(self) -> str | None:
        """The next stop, or None when the route is done."""
        if self.current_index < len(self.destinations):
            return self.destinations[self.current_index]
        return None

    def has_next_destination(self) -> bool:
        return self.next_destination() is not None

    def remaining_destinations(self) -> list[str]:
        return list(self.destinations[self.current_index :])

    def skip_next(self) -> str | None:
        """Pass over the next stop without visiting it; returns it (None when the route is done)."""
        destination = self.next_destination()
        if destination is not None:
            self.current_index += 1
            self.completed = self.current_index >= len(self.destinations)
        return destination

    def remove_destination(self, destination: str) -> bool:
        """Take the first not-yet-visited stop ``destination`` off the route; False if there is none."""
        try:
            index = self.destinations.index(destination, self.current_index)
        except ValueError:
            return False
        del self.destinations[index]
        self.completed = self.current_index >= len(self.destinations) and bool(self.visited_destinations)
        return True

    def reset(self) -> None:
        self.current_index = 0
        self.completed = False
        self.visited_destinations.clear()

    def dispatch_next(self, agent: Any) -> Any:
        """Move ``agent`` to the next stop; returns its proxy there, or None when done.

        The plan is advanced before the move (so the state that travels is
        already up to date) and put back if the move fails.
        """
        destination = self.next_destination()
        if destination is None:
            self.completed = True
            return None
        self._advance(destination)
        try:
            return agent.dispatch(destination)
        except BaseException:
            self._step_back()
            raise

    def _advance(self, destination: str) -> None:
        self.visited_destinations.append(destination)
        self.current_index += 1
        self.completed = self.current_index >= len(self.destinations)

    def _step_back(self) -> None:
        self.visited_destinations.pop()
        self.current_index -= 1
        self.completed = False


@dataclass
class ItineraryTask:
    """A method of the paglet to call at a stop: on arrival there, or just before leaving it."""

    destination: str
    method: str
    args: dict[str, Any] = field(default_factory=dict)
    execute: str = EXECUTE_ON_DEFAULT

    def __post_init__(self) -> None:
        _check_destination(self.destination)
        if self.execute not in _EXECUTE_MODES:
            raise ValueError(f"execute must be one of {_EXECUTE_MODES}, got {self.execute!r}")
        if not self.method or self.method.startswith("_"):
            raise ValueError(f"task method {self.method!r} must name a public method")


@dataclass
class TaskItineraryPlan(ItineraryPlan):
    """A plan whose stops carry tasks; ``results`` records what each task returned."""

    tasks: list[ItineraryTask] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    default_tasks: list[ItineraryTask] = field(default_factory=list)  # run at every stop

    def add_task(
        self, destination: str, method: str, args: dict[str, Any] | None = None, execute: str = EXECUTE_ON_DEFAULT
    ) -> None:
        """Add a task, and the destination to the route if it is not on it yet."""
        self.tasks.append(ItineraryTask(destination, method, dict(args or {}), execute))
        if destination not in self.destinations[self.current_index :]:
            self.add_destination(destination)

    def add_default_task(
        self, method: str, args: dict[str, Any] | None = None, execute: str = EXECUTE_ON_DEFAULT
    ) -> None:
        """Add a task run at every stop (after that stop's own tasks); the route is unchanged."""
        self.default_tasks.append(ItineraryTask(DEFAULT_TASK_STOP, method, dict(args or {}), execute))

    def tasks_for_phase(self, execute: str, destination: str | None = None) -> list[ItineraryTask]:
        """The tasks of one phase (EXECUTE_ON_ARRIVAL or EXECUTE_ON_DISPATCH): at ``destination``, with the
        default tasks after its own; without one, every stop's tasks and then the default ones."""
        if execute not in _EXECUTE_MODES:
            raise ValueError(f"execute must be one of {_EXECUTE_MODES}, got {execute!r}")
        own = [t for t in self.tasks if t.execute == execute and destination in (None, t.destination)]
        return own + [t for t in self.default_tasks if t.execute == execute]

    def tasks_at(self, destination: str, execute: str) -> list[ItineraryTask]:
        return self.tasks_for_phase(execute, destination)

    def run_tasks(self, agent: Any, destination: str, execute: str) -> list[Any]:
        """Call the tasks for ``destination`` and ``execute`` on ``agent``; record their results."""
        outcomes = []
        for task in self.tasks_at(destination, execute):
            result = getattr(agent, task.method)(**task.args)
            self.results.append({"destination": destination, "method": task.method, "result": result})
            outcomes.append(result)
        return outcomes

    def dispatch_next(self, agent: Any) -> Any:
        """Run the current stop's on-dispatch tasks, then move on."""
        if self.visited_destinations:
            self.run_tasks(agent, self.visited_destinations[-1], EXECUTE_ON_DISPATCH)
        return super().dispatch_next(agent)


class ItineraryAgentMixin:
    """For paglets whose state holds an ItineraryPlan (field ``ITINERARY_FIELD``)."""

    ITINERARY_FIELD = "itinerary"

    def itinerary(self) -> ItineraryPlan:
        plan = getattr(self.state, self.ITINERARY_FIELD, None)  # type: ignore[attr-defined]
        if not isinstance(plan, ItineraryPlan):
            raise AttributeError(f"state has no ItineraryPlan in field {self.ITINERARY_FIELD!r}")
        return plan

    def go_to_next_destination(self) -> Any:
        """Dispatch to the next stop and return the proxy there; None when the route is done."""
        return self.itinerary().dispatch_next(self)

    def run_arrival_tasks(self) -> list[Any]:
        """Run the on-arrival tasks of the stop the paglet just reached (TaskItineraryPlan only)."""
        plan = self.itinerary()
        if not isinstance(plan, TaskItineraryPlan) or not plan.visited_destinations:
            return []
        return plan.run_tasks(self, plan.visited_destinations[-1], EXECUTE_ON_ARRIVAL)


def _check_destination(destination: Any) -> str:
    if not isinstance(destination, str) or not destination.strip():
        raise ValueError(f"a destination must be a node address or name, got {destination!r}")
    return destination


__all__ = [
    "EXECUTE_ON_ARRIVAL",
    "EXECUTE_ON_DEFAULT",
    "EXECUTE_ON_DISPATCH",
    "ItineraryAgentMixin",
    "ItineraryPlan",
    "ItineraryTask",
    "TaskItineraryPlan",
]
