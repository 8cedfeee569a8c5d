"""pope evaluation-data converter."""
