// Distributed module.
