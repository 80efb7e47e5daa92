"""The lake: DuckLake connections, snapshots, time travel and retention."""
