"""One module per CLI verb; see omniplus/cli.py for the contract."""
