"""What every path uses: the configuration, the command-line frame of the scripts,
devices, checkpoints, reading a run's files, and drawing landmarks."""
