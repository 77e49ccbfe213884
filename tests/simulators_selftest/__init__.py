"""Self-tests of the provider simulators, over real HTTP on 127.0.0.1."""
