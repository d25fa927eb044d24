"""Simulated and replayed traffic, for plumbing, demos and the closed loop; never imported by
the production packages.

- ``traffic``: a world of users and movies emitting the contract's event lines (and a
  MovieLens replay through ``replay``), to Kafka or stdout;
- ``movieapp``: simulated users calling the live service and acting on what it answers;
- ``snapshots``: a simulated world's snapshot, built in memory for tests and the docs'
  figures.

Quality claims come from real data (MovieLens-100K), not from these worlds.
"""
