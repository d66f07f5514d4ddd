"""Networks, checkpoints and ensembles."""
