"""Shipped model artifacts: ONNX graphs, weights, PCA bases and their JSON model cards.

This folder holds data, not logic; the engine finds files here through the model cards
(see ``engine.paths.models_dir``).
"""
