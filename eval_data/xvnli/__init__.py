"""xvnli evaluation-data converter."""
