"""xflickrco evaluation-data converter."""
