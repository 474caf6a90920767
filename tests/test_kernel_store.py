"""The kernel store: a kernel compiled in one process loads in the next without TorchDynamo or
TorchInductor, under a key that changes with the computation and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rlsuite.core import kernel_store
from rlsuite.core.compiled import CompiledKernel

ROOT = Path(__file__).resolve().parents[1]


def _scaled(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.tanh(x * w + 0.25)
    return y, y > 0.0


def _key(fn, *args: torch.Tensor) -> str | None:
    return kernel_store.trace(fn, args, ["test"])[0]


def test_the_key_follows_the_computation_not_the_input_values() -> None:
    x, w = torch.randn(6), torch.randn(6)
    key = _key(_scaled, x, w)
    assert key is not None and len(key) == 64
    assert _key(_scaled, torch.randn(6), torch.randn(6)) == key  # other values, same graph
    assert _key(_scaled, torch.randn(7), torch.randn(7)) != key  # another shape
    assert _key(_scaled, torch.randn(12)[::2], w) != key  # another stride
    assert _key(_scaled, x.double(), w.double()) != key  # another dtype
    assert kernel_store.trace(_scaled, (x, w), ["other options"])[0] != key

    def other_scalar(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.tanh(x * w + 0.5)
        return y, y > 0.0

    assert _key(other_scalar, x, w) != key


def test_a_constant_the_function_closes_over_is_keyed_by_its_values() -> None:
    def closing_over(c: torch.Tensor):
        return lambda x: (x + c,)

    x = torch.zeros(3)
    a = _key(closing_over(torch.tensor([1.0, 2.0, 3.0])), x)
    assert a == _key(closing_over(torch.tensor([1.0, 2.0, 3.0])), x)
    assert a != _key(closing_over(torch.tensor([1.0, 2.0, 3.5])), x)
    # an expanded (stride 0) constant is keyed too
    assert _key(closing_over(torch.tensor([2.0]).expand(3)), x) is not None


def test_the_trace_returns_the_eager_outputs_and_leaves_the_arguments_alone() -> None:
    def writes_into(x: torch.Tensor) -> tuple[torch.Tensor]:
        x.add_(1.0)
        return (x * 2.0,)

    x = torch.ones(4)
    key, outputs, copies = kernel_store.trace(writes_into, (x,), [])
    assert key is not None and x.tolist() == [1.0] * 4
    assert outputs[0].tolist() == [4.0] * 4 and copies[0].tolist() == [2.0] * 4


def test_the_store_can_be_turned_off(monkeypatch) -> None:
    monkeypatch.setenv("RLSUITE_KERNEL_STORE", "0")
    key, outputs, _ = kernel_store.trace(_scaled, (torch.ones(2), torch.ones(2)), [])
    assert key is None and len(outputs) == 2
    assert kernel_store.load("0" * 64) is None


@pytest.mark.parametrize("options", [{}, {"cpp_wrapper": True}])
def test_a_compiled_kernel_is_stored_and_a_new_kernel_object_loads_it(options: dict) -> None:
    # cpp_wrapper (the large env steps use it): the module loads one C++ library holding the
    # whole call, whose entry point is recorded like a kernel's
    x, w = torch.linspace(-1, 1, 9), torch.full((9,), 3.0)
    first = CompiledKernel(_scaled, options)
    y, big = first(x, w)
    second = CompiledKernel(_scaled, options)
    run = second.runner((x, w), (None, None))
    assert run.stored and run.direct
    y2, big2 = run((x, w))
    assert torch.equal(y, y2) and torch.equal(big, big2) and big2.dtype == torch.bool


def test_a_changed_or_missing_module_is_compiled_again(tmp_path) -> None:
    x, w = torch.linspace(-2, 2, 5), torch.full((5,), 0.5)
    kernel = CompiledKernel(_scaled)
    kernel(x, w)
    key = kernel_store.trace(_scaled, (x, w), kernel.store_context())[0]
    record = Path(kernel_store.store_dir()) / key[:2] / f"{key}.json"
    saved = record.read_text()
    try:
        recipe = json.loads(saved)
        record.write_text(json.dumps({**recipe, "source_sha256": "0" * 64}))
        assert kernel_store.load(key) is None
        record.write_text(json.dumps({**recipe, "source": str(tmp_path / "gone.py")}))
        assert kernel_store.load(key) is None
        # the kernel still runs: it is compiled again (and stored again)
        run = CompiledKernel(_scaled).runner((x, w), (None, None))
        assert not run.stored and run.direct
        assert kernel_store.load(key) is not None
    finally:
        record.write_text(saved)


def _run_python(code: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


PPO_RUN = """
    import sys, torch
    torch.set_num_threads(1)
    import rlsuite.envs as envs
    from rlsuite.learners.ppo import PPO, PPOConfig
    env = envs.make("cartpole")
    agent = PPO(PPOConfig(num_steps=16, num_minibatches=2, update_epochs=2), env,
                env.default_params(8), seed=3)
    agent.learn(3 * 16 * 8)
    flat = torch.cat([p.detach().reshape(-1) for p in agent.model.parameters()])
    print("dynamo" if "torch._dynamo" in sys.modules else "no-dynamo",
          "inductor" if "torch._inductor" in sys.modules else "no-inductor")
    print(flat.double().sum().item(), flat.double().square().sum().item())
"""


@pytest.mark.slow
def test_a_warm_process_trains_ppo_without_importing_dynamo_and_gets_the_same_numbers() -> None:
    first = _run_python(PPO_RUN)  # compiles, or loads what an earlier run stored
    warm = _run_python(PPO_RUN).splitlines()
    assert warm[0] == "no-dynamo no-inductor"
    assert warm[1] == first.splitlines()[1]
    # the store off: TorchInductor compiles (from its own cache) the same code, same numbers
    off = _run_python(PPO_RUN, {"RLSUITE_KERNEL_STORE": "0"}).splitlines()
    assert off[0] == "dynamo inductor" and off[1] == warm[1]


def test_the_optimizer_is_built_without_importing_dynamo_and_left_as_torch_made_it() -> None:
    out = _run_python("""
        import sys, torch
        from rlsuite.learners.optim import adam
        model = torch.nn.Linear(3, 2)
        opt = adam(model.parameters(), lr=1e-3)
        print("torch._dynamo" in sys.modules)
        raw = vars(torch.optim.Optimizer)["add_param_group"].__wrapped__
        print(hasattr(raw, "__dynamo_disable"))
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
        print(sorted(opt.state_dict()["state"]))
    """).split()
    assert out[0] == "False" and out[1] == "False"


@pytest.mark.parametrize("line", [
    "from torch._inductor.codecache import PyCodeCache",
    "x = torch._dynamo.config",
    "k = async_compile.triton('k', '''src''')",
])
def test_a_module_the_loader_cannot_run_is_not_stored(line: str) -> None:
    head = "from torch._inductor.async_compile import AsyncCompile\n" + line + "\n"
    assert kernel_store._runnable_head(head) is None
    assert kernel_store._runnable_head(
        "from torch._inductor.async_compile import AsyncCompile\nx = 1\n") is not None


@pytest.mark.slow  # a cold TorchInductor cache (a fresh CI machine) makes it ~15 s
def test_a_warm_cli_run_with_checkpoints_imports_neither_dynamo_nor_inductor(tmp_path) -> None:
    code = f"""
        import atexit, sys
        atexit.register(lambda: print("imported:", "torch._dynamo" in sys.modules,
                                      "torch._inductor" in sys.modules))
        from rlsuite.cli import main
        sys.argv = ["rlsuite", "agent=ppo", "env=cartpole", "num_envs=8", "agent.num_steps=16",
                    "total_steps=512", "checkpoint_every=128", "hydra.run.dir={tmp_path}/run_${{seed}}"]
        main()
    """
    _run_python(code)  # compiles or loads; checkpoints the optimizer's state
    warm = _run_python(code.replace("run_${seed}", "again"))
    assert "already completed" not in warm and (tmp_path / "again" / "checkpoints").is_dir()
    assert warm.splitlines()[-1] == \
        "imported: False False"
