"""Experiment runner: config → runs, the orbax results store, resume, sharding the grid."""
