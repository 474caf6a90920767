"""VGDF: cross-domain policy adaptation by value-guided data filtering (Xu et al., NeurIPS 2023).

Modules: :mod:`.config` (VGDFConfig), :mod:`.filter` (fictitious value ensemble, FVP scores,
rejection), :mod:`.model` (the target dynamics ensemble), :mod:`.update` (the SAC step with
filtered source data and the optimistic actor), :mod:`.darc` (the DARC baseline), :mod:`.domains`
(source and target: two params of one engine env, or two gymnasium MuJoCo envs), :mod:`.agent`
(the VGDF shell and its baselines).

Import from the modules (``from rlsuite.agents.vgdf.agent import VGDF``): this file only
registers the agent, so that :mod:`rlsuite.config` reads the config schema without loading it.
"""

from rlsuite.agents import register

register("vgdf", config="rlsuite.agents.vgdf.config:VGDFConfig", build="rlsuite.agents.vgdf.agent:VGDF",
         schema="vgdf_schema")
