"""Gymnasium environments for NovaCron's learning components.

Importing this package registers them (lazily: the module of an environment
is imported by ``gymnasium.make`` only):

* ``novacron/Placement-v0`` — ITP: place tasks from a real cluster trace on
  hosts spread over regions (:mod:`.placement`).
* ``novacron/PlacementContinuous-v0`` — the same, with a continuous action that weights a
  host-scoring rule (for TD3; :mod:`.placement_continuous`, :mod:`novacron.placement.relaxation`).
* ``novacron/BandwidthAllocation-v0`` — PBA: per-transfer bandwidth shares on a link whose
  capacity replays a real bandwidth trace (:mod:`.bandwidth`).
"""

from gymnasium.envs.registration import register, registry

if "novacron/Placement-v0" not in registry:
    register(id="novacron/Placement-v0", entry_point="novacron.sim.envs.placement:PlacementEnv")

if "novacron/PlacementContinuous-v0" not in registry:
    register(
        id="novacron/PlacementContinuous-v0",
        entry_point="novacron.sim.envs.placement_continuous:PlacementContinuousEnv",
    )

if "novacron/BandwidthAllocation-v0" not in registry:
    register(
        id="novacron/BandwidthAllocation-v0",
        entry_point="novacron.sim.envs.bandwidth:BandwidthAllocationEnv",
    )
