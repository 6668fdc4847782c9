"""The non-LeNet-5 networks of the experiments: Fig. 9's MLP baselines (mlp), Bouvrie's learned
C3 combinations (combinations), and the online pass they share (online)."""
