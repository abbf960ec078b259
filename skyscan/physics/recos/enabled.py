"""Which recos a service runs: registered (:mod:`.registry`) is not runnable.

A service runs only the recos its operator enabled. Recos marked ``test_only`` (``dummy``,
``crash-dummy``: one of them kills its worker on purpose) are never enabled unless named or asked
for with ``test_recos``.
"""

from __future__ import annotations

from collections.abc import Iterable

from skyscan.physics.recos.registry import RECOS, TEST_RECOS, UnknownReco


def enabled_recos(names: Iterable[str] = (), test_recos: bool = False) -> frozenset[str]:
    """The recos a service runs: ``names`` (empty: every reco that is not test-only), plus the
    test-only ones when ``test_recos``. An unknown name raises UnknownReco."""
    chosen = set(names)
    unknown = sorted(chosen - set(RECOS))
    if unknown:
        raise UnknownReco(f"unknown recos {unknown}; known: {', '.join(sorted(RECOS))}")
    if not chosen:
        chosen = set(RECOS) - TEST_RECOS
    return frozenset(chosen | (TEST_RECOS if test_recos else set()))
