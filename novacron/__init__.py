"""NovaCron: the DWCP v3 protocol stack, written once for a simulator and a real backend."""
