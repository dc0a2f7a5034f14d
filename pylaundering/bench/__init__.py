"""Benchmarks of the fused ops against eager PyTorch and torch.compile, shared by
``python -m pylaundering.bench`` (and the GPU check) and the pytest-benchmark suites."""
