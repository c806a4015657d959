"""ITP: intelligent task placement (heuristic baselines and learned policies)."""
