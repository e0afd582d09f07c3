"""`/bench`: a bounded, approved load test of one deployment, its figures stored per
organisation (`tools.bench.tools`); the load generator itself is `tools.bench.load`."""
