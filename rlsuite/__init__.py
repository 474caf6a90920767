"""rlsuite: six research agents on one batched torch rollout engine.

Importing it sets torch's CPU intra-op threads to one (env stepping and small networks run 10-100x
slower with more on a busy machine); ``RLSUITE_THREADS=n`` picks another count, ``RLSUITE_THREADS=0``
or a set ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` leaves torch's count alone
(:mod:`rlsuite.core.threads`).
"""

from rlsuite.core.threads import configure_on_import

__version__ = "0.1.0"

configure_on_import()
