"""Running: training, checkpoints and run directories, sampling, evaluation, metrics and pictures."""
