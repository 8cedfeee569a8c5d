"""maxm evaluation-data converter."""
