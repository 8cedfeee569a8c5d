"""chair evaluation-data converter."""
