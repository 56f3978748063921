"""Run records (one JSON per encoder × task × probe) and generated leaderboards."""
