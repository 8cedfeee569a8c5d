"""xm3600 evaluation-data converter."""
