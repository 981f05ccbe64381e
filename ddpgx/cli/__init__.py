"""The application layer: the ddpgx command line (train, eval), its run configuration and presets."""
