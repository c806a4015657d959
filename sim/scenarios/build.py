"""Resolving a scenario's names (node selectors, sites) against its built topology.

Selectors cannot be checked by the schema alone: ``region:East US`` is valid only if the topology
has that region. A :class:`NodeResolver` resolves them while components install themselves and
*collects* problems instead of raising at the first, so that a scenario with three mistakes is
reported with three lines, each naming its field (``faults[2].side_a: unknown region ...``).
"""

from __future__ import annotations

from collections.abc import Iterable

from novacron.sim.network.topology import Link, Topology

from .errors import ScenarioError


class NodeResolver:
    """Turns selectors into sorted node ids for one topology, recording what does not resolve."""

    def __init__(self, topology: Topology, *, source: str | None = None) -> None:
        self.topology = topology
        self.source = source
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def raise_problems(self) -> None:
        """Raise one :class:`ScenarioError` with every problem recorded so far, if any."""
        if self.problems:
            lines = [f"{self.source}: {p}" for p in self.problems] if self.source else self.problems
            raise ScenarioError(lines, source=self.source)

    # -- selectors ----------------------------------------------------------------------------
    def select(self, path: str, selectors: Iterable[str]) -> list[str]:
        """The union of ``selectors`` (``ID``, ``node:ID``, ``site:S``, ``region:R``, ``all``)."""
        chosen: set[str] = set()
        for selector in selectors:
            chosen |= self._one_selector(path, selector)
        return sorted(chosen)

    def one(self, path: str, node: str) -> str | None:
        """A single node id (``node:`` prefix allowed); ``None`` (and a problem) if unknown."""
        name = node.removeprefix("node:")
        if name in self.topology.nodes:
            return name
        self.problem(path, f"unknown node {node!r} ({self._some_nodes()})")
        return None

    def site_links(self, path: str, sites: tuple[str, str], *, both_ways: bool) -> list[Link] | None:
        """The site-to-site link(s) between two sites, for link-level faults."""
        a, b = (s.removeprefix("site:") for s in sites)
        unknown = [s for s in (a, b) if s not in self.topology.sites]
        if unknown:
            self.problem(path, f"unknown site(s) {unknown} (sites: {', '.join(self.topology.sites)})")
            return None
        if a == b:
            self.problem(path, f"both ends are site {a!r}: give two different sites")
            return None
        links = [self.topology.site_links.get((a, b))]
        if both_ways:
            links.append(self.topology.site_links.get((b, a)))
        if any(link is None for link in links):
            self.problem(path, f"sites {a!r} and {b!r} are not connected")
            return None
        return [link for link in links if link is not None]

    def _one_selector(self, path: str, selector: str) -> set[str]:
        topo = self.topology
        kind, _, value = selector.partition(":") if ":" in selector else ("node", "", selector)
        if selector in ("all", "*"):
            return set(topo.nodes)
        if kind == "node":
            node = self.one(path, value)
            return {node} if node is not None else set()
        if kind == "site":
            if value not in topo.sites:
                self.problem(path, f"unknown site {value!r} (sites: {', '.join(topo.sites)})")
                return set()
            return {n for n, spec in topo.nodes.items() if spec.site == value}
        if kind == "region":
            regions = sorted({s.region for s in topo.sites.values()})
            if value not in regions:
                self.problem(path, f"unknown region {value!r} (regions here: {', '.join(regions)})")
                return set()
            return {n for n in topo.nodes if topo.region_of(n) == value}
        self.problem(
            path,
            f"bad selector {selector!r}: use a node id, node:ID, site:NAME, region:NAME or all",
        )
        return set()

    def _some_nodes(self) -> str:
        nodes = list(self.topology.nodes)
        shown = ", ".join(nodes[:6]) + (f", ... ({len(nodes)} in all)" if len(nodes) > 6 else "")
        return f"nodes: {shown}"

    # -- link classes -------------------------------------------------------------------------
    def sources_for(self, link_class: str) -> list[str]:
        """Nodes with at least one peer at ``link_class`` distance (``any``: any peer)."""
        topo = self.topology
        nodes = sorted(topo.nodes)
        site_size = {site: 0 for site in topo.sites}
        for spec in topo.nodes.values():
            site_size[spec.site] += 1
        populated = [s for s, n in site_size.items() if n]
        sites_in_region = {topo.sites[s].region: 0 for s in populated}
        for s in populated:
            sites_in_region[topo.sites[s].region] += 1
        if link_class == "any":
            return nodes if len(nodes) > 1 else []
        if link_class == "intra-site":
            return [n for n in nodes if site_size[topo.nodes[n].site] > 1]
        if link_class == "intra-region":
            return [n for n in nodes if sites_in_region[topo.region_of(n)] > 1]
        return nodes if len(sites_in_region) > 1 else []


#: the network mode a protocol's timing defaults come from, by the link class between its nodes
MODE_OF_CLASS = {"intra-site": "datacenter", "intra-region": "hybrid", "inter-region": "internet"}


def mode_spanning(topology: Topology, nodes: list[str]) -> str:
    """The mode of the farthest pair of ``nodes``: one site is a datacenter, one region hybrid,
    several regions the internet (a group's timeouts must suit its slowest link)."""
    classes = {topology.link_class(a, b) for a in nodes for b in nodes if a != b} or {"intra-site"}
    modes = list(MODE_OF_CLASS.values())
    return max((MODE_OF_CLASS[c] for c in classes), key=modes.index)
