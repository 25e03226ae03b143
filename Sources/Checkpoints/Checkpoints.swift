// Checkpoints module.
