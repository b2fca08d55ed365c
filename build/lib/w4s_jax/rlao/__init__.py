"""RLAO: trajectories -> weighted examples -> packed batches -> the jitted train step, with
checkpoints, metrics, LoRA, rounds with the in-process sampler, and AOT compilation for TPU slices."""
