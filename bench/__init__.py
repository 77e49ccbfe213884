"""The benchmark harness: `make bench` measures the gateway against its peers in one run.

Everything listens on 127.0.0.1 only; every load run is bounded in time and every wait in
count. `python -m bench` (from the bench venv) runs it and writes docs/benchmarks.md.
"""
