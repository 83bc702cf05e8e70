"""Store-and-forward sync between gates and the upstream collector."""
