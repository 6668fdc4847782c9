"""The networks and classifiers the paper compares LeNet-5 with: `classical` (linear, k-NN,
PCA + quadratic, RBF network), `mlp` (Fig. 9's multi-layer perceptrons), `combinations`
(Bouvrie's learned C3 connections), `online` (the online pass they share), `boosting` (the
boosted LeNet-4's filtered training sets).
"""
