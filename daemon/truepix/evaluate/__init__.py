"""Metrics and baselines used by ``truepix eval`` and ``truepix bench``."""
