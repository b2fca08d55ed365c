"""Sharding: identical logits on every test mesh, NamedShardings from logical axes, mesh errors,
and the single-host no-op of init_distributed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import mesh_of, requires_devices
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from w4s_jax.models.presets import get_preset
from w4s_jax.parallel.distributed import detect_plan, init_distributed
from w4s_jax.parallel.mesh import make_mesh
from w4s_jax.parallel.sharding import logical_to_spec, state_shardings

pytestmark = requires_devices(8)
MESHES = [(1, 1, 1), (8, 1, 1), (2, 2, 2), (1, 4, 2)]


@pytest.fixture(scope="module")
def reference(tiny_model):
    """Tiny model on one device, its logits for a batch of 8 with left padding, and the batch."""
    config, model = tiny_model
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, config.vocab_size, (8, 16))
    lengths = rng.integers(4, 17, 8)
    segments = (np.arange(16)[None] >= 16 - lengths[:, None]).astype(np.int32)
    positions = np.maximum(np.cumsum(segments, axis=1) - 1, 0)
    batch = (tokens, positions, segments)
    graphdef, state = nnx.split(model)
    logits = jax.jit(lambda state, *batch: nnx.merge(graphdef, state)(*batch)[0])(state, *batch)
    return model, batch, np.asarray(logits)


@pytest.mark.parametrize("shape", MESHES[1:])
def test_forward_is_the_same_on_every_mesh(reference, shape):
    model, batch, expected = reference
    mesh = mesh_of(*shape)
    graphdef, state = nnx.split(model)
    state = jax.device_put(state, state_shardings(state, mesh))
    batch_sharding = NamedSharding(mesh, logical_to_spec(("act_batch", "act_length"), (8, 16), mesh))
    batch = jax.device_put(batch, batch_sharding)

    @jax.jit
    def forward(state, tokens, positions, segments):
        return nnx.merge(graphdef, state)(tokens, positions, segments)[0]

    with jax.set_mesh(mesh):
        logits = forward(state, *batch)
    expected_spec = logical_to_spec(("act_batch", "act_length", "act_vocab"), logits.shape, mesh)
    assert logits.sharding.is_equivalent_to(NamedSharding(mesh, expected_spec), logits.ndim)
    np.testing.assert_allclose(np.asarray(logits), expected, atol=1e-5, rtol=0)


def test_parameters_carry_their_named_shardings(reference):
    model, _, _ = reference
    mesh = mesh_of(1, 4, 2)
    state = nnx.state(model)
    sharded = jax.device_put(state, state_shardings(state, mesh))
    expect = {
        ("embedding",): PartitionSpec("tensor", "fsdp"),
        ("lm_head",): PartitionSpec("fsdp", "tensor"),
        ("final_norm", "scale"): PartitionSpec(None),
        ("layers", "attn", "q_proj"): PartitionSpec(None, "fsdp", "tensor", None),
        ("layers", "attn", "k_proj"): PartitionSpec(None, "fsdp", "tensor", None),
        ("layers", "attn", "q_bias"): PartitionSpec(None, "tensor", None),
        ("layers", "attn", "o_proj"): PartitionSpec(None, "tensor", None, "fsdp"),
        ("layers", "mlp", "gate_proj"): PartitionSpec(None, "fsdp", "tensor"),
        ("layers", "mlp", "down_proj"): PartitionSpec(None, "tensor", "fsdp"),
        ("layers", "input_norm", "scale"): PartitionSpec(None, None),
    }
    flat = {path: var.get_value() for path, var in nnx.to_flat_state(sharded)}
    for path, spec in expect.items():
        assert flat[path].sharding == NamedSharding(mesh, spec), path


def test_indivisible_dims_fall_back_to_replication():
    mesh = mesh_of(1, 1, 8)
    # qwen2p5_1p5b has 2 KV heads: tensor=8 cannot split them; mlp 8960 can.
    config = get_preset("qwen2p5_1p5b")
    kv_shape = (config.hidden_size, config.num_kv_heads, config.head_dim)
    assert logical_to_spec(("embed", "kv_heads", "head_dim"), kv_shape, mesh) == PartitionSpec("fsdp", None, None)
    assert logical_to_spec(("embed", "mlp"), (config.hidden_size, config.intermediate_size), mesh) == PartitionSpec(
        "fsdp", "tensor"
    )
    assert logical_to_spec(("act_batch",), (16,), mesh_of(2, 4, 1)) == PartitionSpec(("data", "fsdp"))


def test_make_mesh_resolves_the_rest_and_rejects_bad_products():
    assert dict(make_mesh(-1, 2, 2).shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert dict(make_mesh(1, -1, 1).shape) == {"data": 1, "fsdp": 8, "tensor": 1}
    with pytest.raises(ValueError, match=r"product 6 does not match the device count 8"):
        make_mesh(3, 2, 1)
    with pytest.raises(ValueError, match=r"at most one axis may be -1"):
        make_mesh(-1, -1, 1)
    with pytest.raises(ValueError, match=r"not divisible by the fixed axes' product 3"):
        make_mesh(-1, 3, 1)


def test_init_distributed_is_a_no_op_on_one_host_and_checks_its_environment():
    assert init_distributed({}).mode == "single"
    assert not jax.distributed.is_initialized()
    plan = detect_plan({"W4S_COORDINATOR_ADDRESS": "10.0.0.1:1234", "W4S_NUM_PROCESSES": "4", "W4S_PROCESS_ID": "3"})
    assert (plan.mode, plan.num_processes, plan.process_id) == ("explicit", 4, 3)
    assert detect_plan({"SLURM_NTASKS": "2", "SLURM_JOB_ID": "7"}).mode == "slurm"
    assert detect_plan({"TPU_WORKER_HOSTNAMES": "a,b"}).mode == "tpu"
    with pytest.raises(ValueError, match="W4S_NUM_PROCESSES and W4S_PROCESS_ID must be set"):
        detect_plan({"W4S_COORDINATOR_ADDRESS": "10.0.0.1:1234"})
    with pytest.raises(ValueError, match=r"W4S_PROCESS_ID=4 must be in \[0, W4S_NUM_PROCESSES=4\)"):
        detect_plan({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "4"})
    assert jnp.zeros(()).shape == ()
