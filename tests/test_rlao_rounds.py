"""RLAO rounds: collect -> train -> collect, the sampler receiving the trainer's parameters in process."""

import json
import types

import jax
import numpy as np
from conftest import mesh_of, requires_devices

from w4s_jax.config.typed import run_settings, section_settings, training_settings
from w4s_jax.models import abstract_model
from w4s_jax.rlao.loading import load_meta_agent
from w4s_jax.rlao.rounds import run_rounds
from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer
from w4s_jax.sampling.sampler import Sampler
from w4s_jax.w4s.policy import SamplerPolicy

CONFIG_OVERRIDES = {
    "model.preset": "tiny", "train.tokenizer": "bytes", "train.seq_len": 256, "train.micro_batch": 4,
    "train.steps": 3, "train.progress": False, "checkpoint.every_steps": 2, "optimizer.learning_rate": 1e-2,
    "optimizer.warmup_steps": 0, "rounds.count": 2,
}  # fmt: skip


def _config(tmp_path):
    from w4s_jax.config.loading import CONFIGS_DIR, load_config_file

    config = load_config_file(CONFIGS_DIR / "rlao.py")
    for dotted, value in CONFIG_OVERRIDES.items():
        section, name = dotted.split(".")
        config[section][name] = value
    config.output_dir = str(tmp_path / "run")
    return config


@requires_devices(2)
def test_rounds_hand_trained_parameters_to_the_sampler(tmp_path, rlao_trajectory_writer):
    config = _config(tmp_path)
    mesh = mesh_of(2)
    training = training_settings(config)
    model_config, params = load_meta_agent(training.model, mesh, training.train.seed)
    from flax import nnx

    graphdef, _ = abstract_model(model_config)
    sampler = Sampler(nnx.merge(graphdef, params), ByteChatTokenizer(), mesh, max_prompt_len=256)
    policy = SamplerPolicy(sampler)
    seen = []

    def fake_collect(config, policy_arg, output_dir):
        """Stands in for run_w4s: notes the parameters the policy's sampler holds, writes trajectories."""
        assert policy_arg is policy
        seen.append(np.asarray(jax.device_get(policy_arg.sampler.state["embedding"].get_value())))
        output_dir.mkdir(parents=True, exist_ok=True)
        path = rlao_trajectory_writer(output_dir / "trajectories.jsonl", tasks=4, history_turns=0)
        return types.SimpleNamespace(trajectories_path=path)

    records, final = run_rounds(
        run_settings(config), training, section_settings(config, "rounds"), model_config=model_config, mesh=mesh,
        tokenizer=ByteChatTokenizer(), sampler=sampler, policy=policy, collect=fake_collect,
        output_dir=config.output_dir, log=lambda _: None,
    )  # fmt: skip
    assert [r.round for r in records] == [0, 1] and all(r.train_steps == 3 for r in records)
    assert len(seen) == 3  # two rounds, then the final collection with the trained meta-agent
    assert not np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[1], seen[2])
    np.testing.assert_array_equal(seen[2], jax.device_get(final["embedding"]))
    assert (tmp_path / "run" / "round_1" / "train" / "metrics.jsonl").exists()


def test_rounds_stop_when_a_collection_has_nothing_to_train_on(tmp_path, rlao_trajectory_writer):
    """The paper's data (rlao.keep_invalid False): no valid, checked candidate -> no training, no more rounds."""
    from flax import nnx

    config = _config(tmp_path)
    mesh = mesh_of(1)
    training = training_settings(config)
    model_config, params = load_meta_agent(training.model, mesh, training.train.seed)
    graphdef, _ = abstract_model(model_config)
    sampler = Sampler(nnx.merge(graphdef, params), ByteChatTokenizer(), mesh, max_prompt_len=256)
    collected, notes = [], []

    def invalid_collect(config, policy, output_dir):
        """Stands in for run_w4s: every candidate of the collection is an invalid action."""
        output_dir.mkdir(parents=True, exist_ok=True)
        path = rlao_trajectory_writer(output_dir / "trajectories.jsonl", tasks=2, history_turns=0)
        records = [json.loads(line) | {"valid_action": False, "val_score": None, "reward": -0.2}
                   for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
        collected.append(path)
        return types.SimpleNamespace(trajectories_path=path)

    records, final = run_rounds(
        run_settings(config), training, section_settings(config, "rounds"), model_config=model_config, mesh=mesh,
        tokenizer=ByteChatTokenizer(), sampler=sampler, policy=None, collect=invalid_collect,
        output_dir=config.output_dir, log=notes.append,
    )  # fmt: skip
    assert records == [] and len(collected) == 1
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(final), jax.device_get(params))  # untouched
    assert "nothing to train on" in notes[-1] and "stopping" in notes[-1]
    assert not (tmp_path / "run" / "round_0" / "train").exists()


@requires_devices(2)
def test_one_model_copy_per_phase(tmp_path, rlao_trajectory_writer, monkeypatch):
    """The sampler holds the parameters while collecting and none while training (it hands them to
    the trainer), and a LoRA round's base is freed once the merged model replaces it: on a 16 GiB
    v5e chip a second 7B copy beside either phase does not fit (`w4s-jax aot`)."""
    import gc
    import weakref

    from flax import nnx

    from w4s_jax.rlao import rounds as rounds_module

    config = _config(tmp_path)
    config.lora.enabled = True
    mesh = mesh_of(2)
    training = training_settings(config)
    model_config, params = load_meta_agent(training.model, mesh, training.train.seed)
    graphdef, _ = abstract_model(model_config)
    sampler = Sampler(nnx.merge(graphdef, params), ByteChatTokenizer(), mesh, max_prompt_len=256)
    del params
    bases, seen = [], []
    real_run_training = rounds_module.run_training

    def run_training(*args, model_params, **kwargs):
        bases.append(weakref.ref(model_params["layers"]["attn"]["q_proj"]))
        seen.append(("train", sampler.state is None))
        return real_run_training(*args, model_params=model_params, **kwargs)

    def collect(config, policy, output_dir):
        gc.collect()
        seen.append(("collect", sampler.state is not None, [base() is None for base in bases]))
        output_dir.mkdir(parents=True, exist_ok=True)
        return types.SimpleNamespace(trajectories_path=rlao_trajectory_writer(
            output_dir / "trajectories.jsonl", tasks=4, history_turns=0))

    monkeypatch.setattr(rounds_module, "run_training", run_training)
    records, final = run_rounds(
        run_settings(config), training, section_settings(config, "rounds"), model_config=model_config, mesh=mesh,
        tokenizer=ByteChatTokenizer(), sampler=sampler, policy=SamplerPolicy(sampler), collect=collect,
        output_dir=config.output_dir, log=lambda _: None,
    )  # fmt: skip
    assert [r.round for r in records] == [0, 1]
    assert seen == [
        ("collect", True, []), ("train", True),
        ("collect", True, [True]), ("train", True),  # round 0's base is gone before round 1 collects
        ("collect", True, [True, True]),  # the final collection
    ]
    assert sampler.state is None and set(final) == {"embedding", "layers", "final_norm", "lm_head"} - (
        {"lm_head"} if model_config.tie_embeddings else set())
