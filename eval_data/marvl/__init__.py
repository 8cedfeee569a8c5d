"""marvl evaluation-data converter."""
