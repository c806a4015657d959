"""Real public data shipped inside the package (see README.md here for sources and licences).

Loaded with :mod:`importlib.resources`, so a fresh clone or an installed
wheel works with no network access and no ``../shared``.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def inter_region_rtt_ms() -> dict[tuple[str, str], float]:
    """P95 RTT in milliseconds between Azure regions, keyed by (source, destination).

    Source: Azure network round-trip latency statistics (CC BY 4.0).
    """
    text = resources.files(__package__).joinpath("latency/azure_inter_region_p95_rtt_ms.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return {(r["source"], r["destination"]): float(r["p95_rtt_ms"]) for r in rows}


def regions() -> list[str]:
    """Every region that appears in the latency matrix, sorted."""
    return sorted({a for a, _ in inter_region_rtt_ms()} | {b for _, b in inter_region_rtt_ms()})


def region_rtt(a: str, b: str) -> float:
    """RTT in seconds between two regions (either direction of the matrix)."""
    if a == b:
        raise ValueError("same region: use a site-level RTT instead")
    matrix = inter_region_rtt_ms()
    ms = matrix.get((a, b), matrix.get((b, a)))
    if ms is None:
        raise KeyError(f"no RTT between {a!r} and {b!r} in the latency matrix (regions: {regions()})")
    return ms / 1000.0
