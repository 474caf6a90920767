"""The shared learners (PPO, SAC, QR-DQN, NPG) and their building blocks; the first three are
also agents of their own (``agent=ppo``, ``agent=sac``, ``agent=qrdqn``), registered here."""

from rlsuite.agents import register

register("ppo", config="rlsuite.learners.ppo:PPOConfig", build="rlsuite.learners.ppo:PPO",
         schema="ppo_schema")
register("sac", config="rlsuite.learners.sac:SACConfig", build="rlsuite.learners.sac:SAC",
         schema="sac_schema")
register("qrdqn", config="rlsuite.learners.qrdqn:QRDQNConfig", build="rlsuite.learners.qrdqn:QRDQN",
         schema="qrdqn_schema")
