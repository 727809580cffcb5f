"""Equipment rules, free of any framework: where the doses of a broken unit can go.

"Room": a unit can take the doses if it is active and working, its temperature range lies inside
the storage range of every product to move (an ILR for +2..+8 C vaccines, never a freezer), its
capacity in doses is recorded, and that capacity less the doses it holds covers all the doses.
A unit whose capacity was never recorded is not offered: room we cannot tell is no room.

"Nearest": fewest steps through the store tree (the materialised paths): another unit of the same
store first (0), then the parent or a child (1), then a sibling under the same parent (2) and so
on up the tree. At equal steps the store reached with fewer steps up wins (a neighbouring centre
under the same district before the state store), then the unit with the most free room. The tree
is the only distance the service knows; stores carry no coordinates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

WORKING, NEEDS_REPAIR, NOT_WORKING = "working", "needs_repair", "not_working"
WORKING_STATUSES = (WORKING, NEEDS_REPAIR, NOT_WORKING)


def path_ids(path: str) -> list[str]:
    """The store ids along a materialised path such as "/1/4/17/"."""
    return [part for part in path.split("/") if part]


def _common(a: list[str], b: list[str]) -> int:
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return common


def tree_distance(path_a: str, path_b: str) -> int:
    """Steps between two stores through the tree (0 for the same store)."""
    a, b = path_ids(path_a), path_ids(path_b)
    return len(a) + len(b) - 2 * _common(a, b)


def steps_up(path_from: str, path_to: str) -> int:
    """Steps up the tree from the first store to the stores' nearest common ancestor."""
    a, b = path_ids(path_from), path_ids(path_to)
    return len(a) - _common(a, b)


@dataclasses.dataclass(frozen=True)
class UnitSpace:
    """A storage unit that might take doses: where it is and what it holds."""

    unit_id: int
    store_id: int
    store_path: str
    working_status: str
    active: bool
    min_temp_c: float
    max_temp_c: float
    capacity_doses: int | None
    held_doses: int

    @property
    def free_doses(self) -> int | None:
        """Doses it can still take (None when its capacity is unknown)."""
        if self.capacity_doses is None:
            return None
        return max(self.capacity_doses - self.held_doses, 0)


def has_room(space: UnitSpace, doses: int, product_ranges: Iterable[tuple[float, float]]) -> bool:
    """Tell whether the unit can take all these doses of products with these storage ranges."""
    if not space.active or space.working_status != WORKING:
        return False
    if any(space.min_temp_c < low or space.max_temp_c > high for low, high in product_ranges):
        return False
    return space.free_doses is not None and space.free_doses >= doses


def nearest_with_room(
    origin_path: str,
    spaces: Sequence[UnitSpace],
    doses: int,
    product_ranges: Sequence[tuple[float, float]],
    exclude_unit: int | None = None,
) -> list[UnitSpace]:
    """Units with room for the doses, nearest first (see the module's definitions)."""
    fits = [s for s in spaces if s.unit_id != exclude_unit and has_room(s, doses, product_ranges)]
    return sorted(
        fits,
        key=lambda s: (
            tree_distance(origin_path, s.store_path),
            steps_up(origin_path, s.store_path),
            -(s.free_doses or 0),
            s.unit_id,
        ),
    )


@dataclasses.dataclass(frozen=True)
class FunctionalCount:
    """Storage units of a district's subtree by working status."""

    working: int = 0
    needs_repair: int = 0
    not_working: int = 0

    @property
    def total(self) -> int:
        """Every unit counted."""
        return self.working + self.needs_repair + self.not_working

    @property
    def functional(self) -> int:
        """Units that keep vaccine cold: working, or working but needing a repair.

        The WHO/UNICEF cold chain equipment inventory counts "functioning but needs repair" as
        functional; only "not functioning" units are not.
        """
        return self.working + self.needs_repair

    @property
    def functional_pct(self) -> float | None:
        """Share of functional units (None without any unit)."""
        return round(100 * self.functional / self.total, 1) if self.total else None


def count_statuses(statuses: Iterable[str]) -> FunctionalCount:
    """Count units by working status."""
    counts = dict.fromkeys(WORKING_STATUSES, 0)
    for status in statuses:
        counts[status] += 1
    return FunctionalCount(**counts)
