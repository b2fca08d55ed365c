"""The jitted RLAO step on the tiny model: SFT equivalence, meshes, accumulation, LoRA, learning."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import mesh_of, requires_devices
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from w4s_jax.models import get_preset, load_model
from w4s_jax.rlao.examples import WeightConfig, build_examples
from w4s_jax.rlao.loading import export_meta_agent
from w4s_jax.rlao.pipeline import BATCH_AXES, BATCH_KEYS, PipelineConfig, build_dataset, place_batch
from w4s_jax.rlao.settings import LoraConfig, OptimizerConfig, StepConfig
from w4s_jax.rlao.shared_prefix import example_features
from w4s_jax.rlao.train_step import TrainProgram
from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer
from w4s_jax.trajectory import read_trajectories

SEQ, ROWS, LR = 512, 8, 1e-3
MODEL = get_preset("tiny")
_PROGRAMS: dict = {}
pytestmark = requires_devices(8)


def program(mesh_shape=(8, 1, 1), micro_batches=1, lora=None) -> TrainProgram:
    """One TrainProgram (one compile) per distinct setting, shared by the tests of this module.

    eps = 1e-3 keeps Adam's first steps (lr * g / (|g| + eps)) smooth in g; at eps = 1e-8 they are
    lr * sign(g), and float32 summation order in gradients of ~1e-10 would decide comparisons of
    parameters between two equivalent programs.
    """
    key = (mesh_shape, micro_batches, lora)
    if key not in _PROGRAMS:
        mesh = mesh_of(*mesh_shape)
        optimizer = OptimizerConfig(learning_rate=LR, warmup_steps=0, total_steps=1000, clip_norm=1.0, eps=1e-3)
        _PROGRAMS[key] = TrainProgram(MODEL, mesh, optimizer, StepConfig(logits_chunk=256, lora=lora))
    return _PROGRAMS[key]


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory, rlao_trajectory_writer):
    """Short conversations (no earlier turns), so three examples pack into one row."""
    return rlao_trajectory_writer(tmp_path_factory.mktemp("rlao_step") / "trajectories.jsonl", history_turns=0)


@pytest.fixture(scope="module")
def examples(trajectories):
    return build_examples(read_trajectories(str(trajectories)), ByteChatTokenizer(), SEQ, WeightConfig())[0]


@pytest.fixture(scope="module")
def host_params():
    _, model = load_model("tiny", "", mesh=mesh_of(8), seed=0)
    return jax.device_get(nnx.to_pure_dict(nnx.state(model)))


def local_batches(examples, steps, micro_batches=1, rows=ROWS, shared_prefix=True):
    config = PipelineConfig(seq_len=SEQ, global_batch=rows, micro_batches=micro_batches, seed=0, shared_prefix=shared_prefix)
    iterator = iter(build_dataset(examples, config))
    out = []
    for _ in range(steps):
        batch = next(iterator)
        out.append({k: v.reshape(micro_batches, rows // micro_batches, SEQ) for k, v in batch.items()})
    return out


def train(prog: TrainProgram, host_params, batches):
    """Runs the steps; returns (losses, final state, frozen)."""
    params = jax.device_put(host_params, prog.model_shardings)
    state, frozen = prog.init_state(params, seed=0)
    losses = []
    with jax.set_mesh(prog.mesh):
        for local in batches:
            state, metrics = prog.step(state, frozen, place_batch(local, NamedSharding(prog.mesh, PartitionSpec(None, BATCH_AXES, None))))
            losses.append(float(metrics["loss"]))
    return losses, state, frozen


def test_equal_rewards_give_plain_sft(examples, host_params, trajectories):
    """All rewards equal: normalised weights are exactly 1, and one step reaches the parameters of an
    independent plain-SFT step (full logits, per-example mean NLL from segment ids, optax AdamW)."""
    records = [dataclasses.replace(r, reward=0.7) for r in read_trajectories(str(trajectories))]
    constant, _ = build_examples(records, ByteChatTokenizer(), SEQ, WeightConfig(mode="normalize"))
    assert {e.weight for e in constant} == {1.0}
    (batch,) = local_batches(constant, 1, shared_prefix=False)  # one example per segment, as the reference reads it
    prog = program()
    _, state, _ = train(prog, host_params, [batch])

    flat = {k: v[0] for k, v in batch.items()}
    targets = (flat["target_scale"] > 0).astype(np.float32)
    selections = [
        (flat["segment_ids"] == seg)[None] & (np.arange(ROWS)[:, None] == row)
        for row in range(ROWS)
        for seg in np.unique(flat["segment_ids"][row][flat["segment_ids"][row] > 0])
    ]
    selection = jnp.asarray(np.concatenate(selections) * targets[None])  # [examples, rows, T]

    def sft_loss(params):
        model = nnx.merge(prog.graphdef, params)
        logits, _ = model(jnp.asarray(flat["inputs"]), jnp.asarray(flat["positions"]), jnp.asarray(flat["segment_ids"]))
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.asarray(flat["targets"])[..., None], -1)[..., 0]
        return jnp.mean((selection * nll).sum((1, 2)) / selection.sum((1, 2)))

    params = jax.tree.map(jnp.asarray, host_params)
    adamw = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(LR, b1=0.9, b2=0.95, eps=1e-3, weight_decay=0.0))
    updates, _ = adamw.update(jax.grad(sft_loss)(params), adamw.init(params), params)
    expected = optax.apply_updates(params, updates)
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), expected, params)
    assert max(jax.tree.leaves(moved)) > 0.1 * LR
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6 * LR),
                 state.params, expected)


def test_meshes_give_the_same_losses(examples, host_params):
    """(1,1,1), (8,1,1) and (2,2,2): same three-step loss curve within 2e-5 relative."""
    batches = local_batches(examples, 3)
    curves = {shape: train(program(shape), host_params, batches)[0] for shape in [(1, 1, 1), (8, 1, 1), (2, 2, 2)]}
    reference = curves[(1, 1, 1)]
    assert reference[2] < reference[0]
    for shape, curve in curves.items():
        np.testing.assert_allclose(curve, reference, rtol=2e-5, err_msg=str(shape))


def test_gradient_accumulation_equals_the_big_batch(examples, host_params):
    (big,) = local_batches(examples, 1, micro_batches=1)
    split = {k: v.reshape(2, ROWS // 2, SEQ) for k, v in big.items()}
    loss_big, state_big, _ = train(program((2, 2, 2)), host_params, [big])
    loss_acc, state_acc, _ = train(program((2, 2, 2), micro_batches=2), host_params, [split])
    np.testing.assert_allclose(loss_acc, loss_big, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7),
                 state_acc.params, state_big.params)


def test_lora_changes_only_adapters(examples, host_params, tmp_path):
    config = LoraConfig(rank=4, alpha=8.0)
    prog = program((2, 2, 2), lora=config)
    merged_at_init = jax.device_get(prog.merged_params(*prog.init_state(jax.device_put(host_params, prog.model_shardings), 0)))
    jax.tree.map(np.testing.assert_array_equal, merged_at_init, host_params)  # B = 0: the base model

    _, state, frozen = train(prog, host_params, local_batches(examples, 2))
    adapter_paths = {path for path, _ in jax.tree_util.tree_flatten_with_path(state.params)[0]}
    assert adapter_paths and all(str(p[-1].key) in ("a", "b") and str(p[-2].key) in config.targets for p in adapter_paths)
    assert len(jax.tree.leaves(state.params)) == 2 * 7
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(frozen), host_params)  # base untouched
    assert all(np.abs(np.asarray(b)).max() > 0 for b in jax.tree.leaves(state.params) if b.shape[-1] != 4)

    merged = jax.device_get(prog.merged_params(state, frozen))
    for path, value in jax.tree_util.tree_flatten_with_path(merged)[0]:
        name = str(path[-1].key)
        base = host_params
        for part in path:
            base = base[part.key]
        if name in config.targets:
            assert np.abs(value - base).max() > 0, name
        else:
            np.testing.assert_array_equal(value, base)

    # Export (LoRA merged) to Hugging Face safetensors and load it back: the same parameters.
    export_meta_agent(MODEL, prog.merged_params(state, frozen), tmp_path / "hf")
    _, reloaded = load_model("tiny", tmp_path / "hf", mesh=prog.mesh)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(nnx.to_pure_dict(nnx.state(reloaded))), merged)


def _per_example_nll(prog, state, frozen, examples):
    """Mean target-token NLL of each example, one example per row."""
    rows = {k: np.zeros((len(examples), SEQ), np.float32 if k in ("target_scale", "example_weight") else np.int32)
            for k in BATCH_KEYS}
    for i, example in enumerate(examples):
        features = example_features(example)
        n = len(features["inputs"])
        for key, value in features.items():
            rows[key][i, :n] = value
        rows["positions"][i, :n] = np.arange(n)
        rows["segment_ids"][i, :n] = 1
    sharding = NamedSharding(prog.mesh, PartitionSpec(BATCH_AXES, None))
    batch = {k: jax.device_put(v, sharding) for k, v in rows.items()}
    with jax.set_mesh(prog.mesh):
        return np.asarray(prog.example_nll_fn()(state.params, frozen, batch))


def test_rlao_prefers_high_reward_replies_more_than_sft(examples, host_params):
    """After K steps the high-reward replies' log-probability rises relative to the low-reward ones,
    and by more than under unweighted SFT on the same batches."""
    high = np.asarray([e.weight > 1 for e in examples])
    prog = program()

    def preference_gain(train_examples, steps=12):
        _, state0, frozen = train(prog, host_params, [])
        before = _per_example_nll(prog, state0, frozen, examples)
        _, state, frozen = train(prog, host_params, local_batches(train_examples, steps))
        after = _per_example_nll(prog, state, frozen, examples)
        gap = lambda nll: nll[~high].mean() - nll[high].mean()  # noqa: E731
        return gap(after) - gap(before), before.mean() - after.mean()

    rlao_gain, rlao_fit = preference_gain(examples)
    sft_gain, sft_fit = preference_gain([dataclasses.replace(e, weight=1.0) for e in examples])
    assert rlao_fit > 0.5 and sft_fit > 0.5  # both learn the shared text
    assert rlao_gain > 0.02, rlao_gain
    assert rlao_gain > sft_gain + 0.02, (rlao_gain, sft_gain)
