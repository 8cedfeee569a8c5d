"""Shared plumbing for every stage: config, JSONL I/O, languages, seeded sampling, run reports."""
