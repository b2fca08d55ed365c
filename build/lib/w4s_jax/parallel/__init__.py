"""Device mesh, logical-axis sharding rules, and multi-host initialisation."""
