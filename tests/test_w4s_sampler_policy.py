"""SamplerPolicy: the in-process JAX sampler behind the Policy seam, on the `tiny` random model with
the byte tokenizer (no files). Replies are seeded per conversation, so a candidate's reply does not
depend on its batch-mates (what makes resumed runs match), and a W4S run drives it through the
lockstep batcher."""

from __future__ import annotations

import asyncio
import json
import pathlib

import pytest

from w4s_jax.config.loading import CONFIGS_DIR, load_config_file
from w4s_jax.config.typed import run_settings
from w4s_jax.executor.repliers import TableReplier
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint
from w4s_jax.models import load_model
from w4s_jax.parallel.mesh import make_mesh
from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer
from w4s_jax.sampling.sampler import Sampler
from w4s_jax.trajectory import read_trajectories
from w4s_jax.w4s.policy import SamplerPolicy
from w4s_jax.w4s.runner import run_w4s

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def policy() -> SamplerPolicy:
    mesh = make_mesh()
    _, model = load_model("tiny", "", mesh=mesh, seed=3)
    return SamplerPolicy(Sampler(model, ByteChatTokenizer(), mesh, max_prompt_len=2048, max_batch=8))


def test_replies_are_seeded_per_conversation(policy):
    first = [{"role": "user", "content": "Write a workflow."}]
    second = [{"role": "user", "content": "Something else entirely."}]
    together = asyncio.run(policy.generate([first, second], n=2, temperature=1.0, max_new_tokens=12, seed=[11, 12]))
    alone = asyncio.run(policy.generate([first], n=2, temperature=1.0, max_new_tokens=12, seed=[11]))
    assert [len(row) for row in together] == [2, 2]
    assert together[0] == alone[0]  # same seed, same replies, whatever shares the batch
    other_seed = asyncio.run(policy.generate([first], n=2, temperature=1.0, max_new_tokens=12, seed=13))
    assert other_seed[0] != alone[0]
    with pytest.raises(ValueError, match="got 1 seeds for 2 conversations"):
        asyncio.run(policy.generate([first, second], temperature=1.0, max_new_tokens=4, seed=[1]))


def test_a_w4s_run_with_the_in_process_sampler(policy, tmp_path, shared_data_dir):
    with StandInEndpoint(TableReplier({})).in_thread() as executor:
        config = load_config_file(CONFIGS_DIR / "optimize.py")
        config.meta_agent.kind = "jax"
        config.task.name = "gsm8k"
        config.task.data_dir = str(shared_data_dir)
        config.task.val_limit = 2
        config.executor.base_url = executor.url
        config.executor.model = "test-executor"
        config.executor.api_key_env = ""
        config.sandbox.workers = 2
        config.w4s.candidates_per_turn = 3
        config.w4s.max_iterations = 1
        config.w4s.test_eval = False
        config.w4s.progress = False
        config.sampling.max_new_tokens = 16
        result = run_w4s(run_settings(config), policy, tmp_path / "jax")
    records = read_trajectories([result.trajectories_path])
    assert len(records) == 3
    for record in records:  # the tiny model's 2048 positions cannot hold the W4S prompt
        assert (record.valid_action, record.reward, record.val_score, record.reply) == (False, -0.2, None, "")
    assert policy.too_long == 3
    notes = [json.loads(line)["note"] for line in result.trajectories_path.read_text().splitlines()]
    assert notes == ["invalid action: empty reply (the meta-agent produced no text; is its prompt too long?)"] * 3
    assert result.best_workflows["gsm8k"].origin == "seed:cot"


def test_the_in_process_meta_agent_batches_at_most_sampling_max_batch():
    """`w4s-jax aot` reports the generation rows that fit a slice; sampling.max_batch makes the
    runner's sampler use them, and the sampler holds the only parameter copy."""
    from w4s_jax.w4s.meta_agent import in_process_meta_agent

    config = load_config_file(CONFIGS_DIR / "optimize.py")
    config.model.preset, config.meta_agent.kind, config.sampling.max_batch = "tiny", "jax", 8
    agent = in_process_meta_agent(run_settings(config), tokenizer="bytes")
    assert agent.sampler.max_batch == 8 and agent.sampler.state is not None
    assert not hasattr(agent, "params")
