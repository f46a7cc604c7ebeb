"""relaxd benchmarks: `python bench/run.py [--quick]`."""
