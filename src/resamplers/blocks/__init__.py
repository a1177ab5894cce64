"""Multi-scale blocks (``create_block``)."""
