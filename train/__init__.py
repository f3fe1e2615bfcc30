"""Training scripts for Guard's offline models (need the `train` extra: scikit-learn)."""
