"""Readers for real dataset formats from a local folder. Each module registers its loaders."""
