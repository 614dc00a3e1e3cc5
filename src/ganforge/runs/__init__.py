"""Everything about a run folder on disk, for the trainer that writes it and for every reader.

- ``atomic``: the one atomic write (temporary file, fsync, rename, fsync of the folder) and its crash-test
  pause points;
- ``checkpoint``: checkpoints/step-N.pt and best.pt, saved atomically and loaded without running code;
- ``verify``: every entry of a loaded checkpoint checked against what the run expects, before any is used;
- ``folder``: the folder's name, lock, config.yaml, run.json and sample files;
- ``metrics_log``: metrics.jsonl.

Readers (report, serve, eval, export, the API) import this package and never ganforge.train.
"""
