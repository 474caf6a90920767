"""HNPG (Zhou et al. 2023, arXiv 2311.08384): hybrid natural policy gradient with offline data.

* :mod:`.nets` - per-time-step policies and Q critics stored stacked (all H steps in one call);
* :mod:`.critic` - the hybrid Monte-Carlo + offline-TD critic fit;
* :mod:`.block_npg` - H independent TRPO/NPG steps computed together;
* :mod:`.config` - :class:`HNPGConfig` and :class:`RLPDConfig`;
* :mod:`.offline_data` - the epsilon-greedy offline dataset on the combination lock;
* :mod:`.agent` - the :class:`HNPG` agent; :mod:`.rlpd` - the RLPD baseline.
"""

from typing import TYPE_CHECKING

from rlsuite.agents import register
from rlsuite.core.lazy import lazy_exports

register("hnpg", config="rlsuite.agents.hnpg.config:HNPGConfig", build="rlsuite.agents.hnpg.agent:HNPG",
         schema="hnpg_schema")
register("rlpd", config="rlsuite.agents.hnpg.config:RLPDConfig", build="rlsuite.agents.hnpg.rlpd:RLPD",
         schema="rlpd_schema")

# The public names below are imported on first use (importing the package to read its
# registration loads none of its modules).
if TYPE_CHECKING:
    from rlsuite.agents.hnpg.agent import HNPG, npg_update
    from rlsuite.agents.hnpg.config import HNPGConfig

__getattr__, __dir__ = lazy_exports(__name__, {
    "HNPG": ".agent",
    "HNPGConfig": ".config",
    "npg_update": ".agent",
})
__all__ = [
    "HNPG", "HNPGConfig", "npg_update",
]
