"""The `w4s-jax` console script: one absl app per subcommand, configured by ml_collections files."""
