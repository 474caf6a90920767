"""Shared test setup: one CPU thread (the machine is shared; see docs/performance.md)."""

import pytest
import torch

torch.set_num_threads(1)





@pytest.fixture
def interrupt_run(monkeypatch):
    """``interrupt_run(n)``: CLI runs (``rlsuite.runner.run``) are killed with KeyboardInterrupt
    right after iteration ``n`` has been logged and checkpointed; ``monkeypatch.undo()`` ends it."""
    import rlsuite.runner as runner

    real_hook = runner.RunHooks.on_iteration

    def install(after: int) -> None:
        def killed(self, agent, step, metrics):
            real_hook(self, agent, step, metrics)
            if agent.iteration == after:
                raise KeyboardInterrupt

        monkeypatch.setattr(runner.RunHooks, "on_iteration", killed)

    return install
