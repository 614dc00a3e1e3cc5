"""The parts of benchmarks/gpu_check.py: common (budget, context, machine, data), speed, and runs (the tests,
fp16, loader and quality sections)."""
