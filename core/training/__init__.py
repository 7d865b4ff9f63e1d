"""The training path: the loop, distributed workers and their launcher, the optimizer,
the device feeder, and writing a run's record (lock, configuration, state, log)."""
