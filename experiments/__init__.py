"""A/B experiments on published model versions: definitions and their Redis store, the
statistics and verdict, a Thompson-sampling bandit, and reports. ``python -m experiments``."""
