"""xgqa evaluation-data converter."""
