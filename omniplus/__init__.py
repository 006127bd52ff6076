"""omniplus: a secure data market for machine learning run as a ZK rollup."""

__version__ = "0.1.0"
