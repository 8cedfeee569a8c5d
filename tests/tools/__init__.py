"""Development tools: tiny models, fixture writers, benchmarks, the demo web server.

Not part of the pipeline: nothing under common/ pretrain/ match/ tasks/ eval_data/
translate/ may import them (tests/test_layout.py checks).
"""
