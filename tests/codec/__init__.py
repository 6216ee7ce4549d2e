"""`lnrnn compress` / `decompress`: round trips, errors, the REST routes, the adaptive score."""
