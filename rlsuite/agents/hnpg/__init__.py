"""HNPG (Zhou et al. 2023, arXiv 2311.08384): hybrid natural policy gradient with offline data.

* :mod:`.nets` - per-time-step policies and Q critics stored stacked (all H steps in one call);
* :mod:`.critic` - the hybrid Monte-Carlo + offline-TD critic fit;
* :mod:`.block_npg` - H independent TRPO/NPG steps computed together;
* :mod:`.agent` - :class:`HNPGConfig` and the :class:`HNPG` agent.
"""

from rlsuite.agents.hnpg.agent import HNPG, HNPGConfig, npg_update

__all__ = ["HNPG", "HNPGConfig", "npg_update"]
